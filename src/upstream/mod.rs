//! How an upstream API (Tallyfy, a CRM) answered, sorted once for every client: wait (429),
//! credentials refused (401/403), not there (404), data refused (422), worth retrying (408, 5xx,
//! no complete answer) or refused for good (any other status, redirects included).

mod retry_after;
mod text;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

pub use retry_after::parse_retry_after;
pub use text::{EXCERPT_CHARS, excerpt, one_line, truncate};

/// A rate-limit window header and its unit: the wait after a 429 that has no Retry-After.
pub type Window = (&'static str, fn(u64) -> Duration);

/// Why a call gave no usable answer. Each client turns it into its own error, where their
/// treatment differs (Tallyfy's 422 is ambiguous, a CRM's 404 means the record is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429: wait, then try again; not the row's fault.
    RateLimited { retry_after: Option<Duration> },
    /// 401/403: the token (or its access) is bad.
    Unauthorized { status: u16 },
    /// 404.
    NotFound,
    /// 422: the body was understood and refused.
    Unprocessable,
    /// Worth retrying. `may_have_reached`: the upstream may have acted on the request although
    /// no usable answer came back (only a failure to connect proves it never left).
    Transient {
        status: Option<u16>,
        may_have_reached: bool,
        detail: String,
    },
    /// Any other non-2xx: retrying will not help.
    Permanent { status: u16, excerpt: String },
}

/// Sorts a complete response: `Ok` for a 2xx, else the failure. `window`: the API's rate-limit
/// window header, used after a 429 without Retry-After.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    window: Option<Window>,
) -> Result<(), Failure> {
    let code = status.as_u16();
    Err(match code {
        _ if status.is_success() => return Ok(()),
        429 => Failure::RateLimited {
            retry_after: rate_limit_wait(headers, window, SystemTime::now()),
        },
        401 | 403 => Failure::Unauthorized { status: code },
        404 => Failure::NotFound,
        422 => Failure::Unprocessable,
        // 408: the server gave up on us mid-request; it may or may not have acted.
        408 | 500..=599 => Failure::Transient {
            status: Some(code),
            may_have_reached: true,
            detail: excerpt(body),
        },
        _ => Failure::Permanent {
            status: code,
            excerpt: excerpt(body),
        },
    })
}

/// Sorts a call that got no (complete) response: always transient, with the error chain on one
/// bounded line and without the URL (it can carry an email, an id or a token).
pub fn transport(error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let may_have_reached = !(error.is_connect() || error.is_builder());
    let kind = if error.is_connect() {
        "connect failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_builder() {
        "request not built"
    } else if error.is_body() || error.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut detail = format!("{kind}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Transient {
        status: None,
        may_have_reached,
        detail: truncate(&one_line(&detail), EXCERPT_CHARS * 2),
    }
}

/// Retry-After if sent; otherwise the API's rate-limit window, after which the burst that hit
/// the limit is gone.
fn rate_limit_wait(
    headers: &HeaderMap,
    window: Option<Window>,
    now: SystemTime,
) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header(RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| {
            let (name, unit) = window?;
            Some(unit(header(name)?.trim().parse().ok()?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS_WINDOW: Window = ("x-window-ms", Duration::from_millis);

    fn sorted(code: u16) -> Result<(), Failure> {
        let status = StatusCode::from_u16(code).expect("a status");
        classify(status, &HeaderMap::new(), b"{}", None)
    }

    #[test]
    fn statuses_fall_into_one_bucket_each() {
        assert_eq!(sorted(200), Ok(()));
        assert_eq!(sorted(201), Ok(()));
        assert_eq!(sorted(429), Err(Failure::RateLimited { retry_after: None }));
        assert_eq!(sorted(401), Err(Failure::Unauthorized { status: 401 }));
        assert_eq!(sorted(403), Err(Failure::Unauthorized { status: 403 }));
        assert_eq!(sorted(404), Err(Failure::NotFound));
        assert_eq!(sorted(422), Err(Failure::Unprocessable));
        for code in [408, 500, 502, 503] {
            assert!(
                matches!(sorted(code), Err(Failure::Transient { status: Some(c), may_have_reached: true, .. }) if c == code),
                "{code}"
            );
        }
        for code in [302, 400, 409, 410] {
            assert!(
                matches!(sorted(code), Err(Failure::Permanent { status, .. }) if status == code),
                "{code}"
            );
        }
    }

    #[test]
    fn a_429_waits_for_retry_after_else_the_window_if_the_api_has_one() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        headers.insert(MS_WINDOW.0, "10000".parse().expect("value"));
        assert_eq!(
            rate_limit_wait(&headers, Some(MS_WINDOW), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(rate_limit_wait(&headers, None, now), None);
        headers.insert(RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(
            rate_limit_wait(&headers, Some(MS_WINDOW), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers, b"", None),
            Err(Failure::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            })
        );
        assert_eq!(
            rate_limit_wait(&HeaderMap::new(), Some(MS_WINDOW), now),
            None
        );
    }
}
