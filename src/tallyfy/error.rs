//! Outcome classes of a Tallyfy call and how HTTP statuses and transport failures map to them.
//! `may_have_reached` is the one bit the worker needs to avoid a second create.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use super::retry_after::parse_retry_after;

/// Longest excerpt of a response body or error chain kept in an error.
const EXCERPT_CHARS: usize = 200;
/// Laravel's generic 422 message: says nothing the field errors don't.
const GENERIC_422: &str = "The given data was invalid.";

/// Why a Tallyfy call did not produce a result. Never carries the token.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// 429: wait, then try again; not the row's fault.
    #[error("rate limited by Tallyfy (retry after: {})", fmt_wait(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 401/403: the token (or its access to the org) is bad; pause, don't fail rows.
    #[error("Tallyfy rejected the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    /// 422: ambiguous (the email may already be a guest): look it up before failing.
    #[error("Tallyfy rejected the data (HTTP 422): {message}")]
    Unprocessable { message: String },
    /// Worth retrying. If `may_have_reached`, look the guest up before creating again.
    #[error("transient failure{}: {detail} (may have reached Tallyfy: {may_have_reached})", fmt_status(.status))]
    Transient {
        may_have_reached: bool,
        status: Option<u16>,
        detail: String,
    },
    /// Any other 4xx (or 3xx, redirects are not followed): retrying will not help.
    #[error("Tallyfy refused the request (HTTP {status}): {excerpt}")]
    Permanent { status: u16, excerpt: String },
}

impl CallError {
    /// HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Unauthorized { status } | Self::Permanent { status, .. } => Some(*status),
            Self::Unprocessable { .. } => Some(422),
            Self::Transient { status, .. } => *status,
        }
    }

    /// Short class name for attempt logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Unprocessable { .. } => "unprocessable",
            Self::Transient { .. } => "transient",
            Self::Permanent { .. } => "permanent",
        }
    }

    /// True when Tallyfy may have acted on the request although we got no usable answer.
    pub fn may_have_reached(&self) -> bool {
        matches!(
            self,
            Self::Transient {
                may_have_reached: true,
                ..
            }
        )
    }

    /// Replaces `secret` in every free-text field (defence in case a body echoes it).
    pub(crate) fn scrub(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let text = match &mut self {
            Self::Unprocessable { message } => message,
            Self::Transient { detail, .. } => detail,
            Self::Permanent { excerpt, .. } => excerpt,
            Self::RateLimited { .. } | Self::Unauthorized { .. } => return self,
        };
        if text.contains(secret) {
            *text = text.replace(secret, "[REDACTED]");
        }
        self
    }
}

fn fmt_wait(wait: &Option<Duration>) -> String {
    wait.map_or_else(|| "unspecified".to_owned(), |d| format!("{}s", d.as_secs()))
}

fn fmt_status(status: &Option<u16>) -> String {
    status.map_or_else(String::new, |s| format!(" (HTTP {s})"))
}

/// Classifies a non-2xx response. (404 on a look-up is handled by the caller.)
pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let code = status.as_u16();
    match code {
        429 => CallError::RateLimited {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        401 | 403 => CallError::Unauthorized { status: code },
        422 => CallError::Unprocessable {
            message: unprocessable_message(body),
        },
        // 408: the server gave up on us mid-request; it may or may not have acted.
        408 | 500..=599 => CallError::Transient {
            may_have_reached: true,
            status: Some(code),
            detail: excerpt(body),
        },
        _ => CallError::Permanent {
            status: code,
            excerpt: excerpt(body),
        },
    }
}

/// Classifies a failure with no (complete) response.
/// Only a failure to connect proves the request never left; anything else may have reached.
pub(crate) fn from_transport(err: reqwest::Error) -> CallError {
    let err = err.without_url(); // the URL carries the email: keep it out of error text
    let may_have_reached = !(err.is_connect() || err.is_builder());
    let kind = if err.is_connect() {
        "connect failed"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_builder() {
        "request not built"
    } else if err.is_body() || err.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut detail = format!("{kind}: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    CallError::Transient {
        may_have_reached,
        status: None,
        detail: truncate(&one_line(&detail), EXCERPT_CHARS * 2),
    }
}

/// Short human message from either 422 shape:
/// `{"error": true, "errors": {..}}` or `{"message": "..", "errors": {..}}`.
pub(crate) fn unprocessable_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return excerpt(body);
    };
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != GENERIC_422);
    let fields = value.get("errors").map(field_errors).unwrap_or_default();
    let text = match (message, fields.is_empty()) {
        (Some(m), true) => m.to_owned(),
        (Some(m), false) => format!("{m} ({fields})"),
        (None, false) => fields,
        (None, true) => match value.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => excerpt(body),
        },
    };
    truncate(&one_line(&text), EXCERPT_CHARS)
}

/// `field: msg1 msg2; other: msg` from Laravel's `errors` object (or a bare string/array).
fn field_errors(errors: &Value) -> String {
    fn messages(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }
    match errors {
        Value::Object(map) => map
            .iter()
            .map(|(field, v)| format!("{field}: {}", messages(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => messages(other),
    }
}

/// At most `EXCERPT_CHARS` characters of a body, on one line.
pub(crate) fn excerpt(body: &[u8]) -> String {
    truncate(&one_line(&String::from_utf8_lossy(body)), EXCERPT_CHARS)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_shape_gives_field_message() {
        let body = br#"{"message":"The given data was invalid.","errors":{"email":["The email has already been taken."]}}"#;
        assert_eq!(
            unprocessable_message(body),
            "email: The email has already been taken."
        );
    }

    #[test]
    fn error_flag_shape_gives_field_messages() {
        let body = br#"{"error":true,"errors":{"first_name":["The first name may not be greater than 200 characters."],"phone_1":["Too long."]}}"#;
        assert_eq!(
            unprocessable_message(body),
            "first_name: The first name may not be greater than 200 characters.; phone_1: Too long."
        );
    }

    #[test]
    fn specific_message_is_kept_with_fields() {
        let body = br#"{"message":"Email belongs to a member.","errors":{"email":["Taken."]}}"#;
        assert_eq!(
            unprocessable_message(body),
            "Email belongs to a member. (email: Taken.)"
        );
        assert_eq!(unprocessable_message(br#"{"message":"Nope"}"#), "Nope");
    }

    #[test]
    fn unknown_body_becomes_short_single_line_excerpt() {
        let long = format!("<html>\n{}\n</html>", "x".repeat(500));
        let got = unprocessable_message(long.as_bytes());
        assert!(!got.contains('\n'));
        assert!(got.chars().count() <= EXCERPT_CHARS + 1);
        assert!(got.starts_with("<html> xxx"));
    }

    #[test]
    fn statuses_map_to_classes() {
        let h = HeaderMap::new();
        let class =
            |code: u16| from_response(StatusCode::from_u16(code).unwrap(), &h, b"{}").class();
        assert_eq!(class(429), "rate_limited");
        assert_eq!(class(401), "unauthorized");
        assert_eq!(class(403), "unauthorized");
        assert_eq!(class(422), "unprocessable");
        assert_eq!(class(500), "transient");
        assert_eq!(class(503), "transient");
        assert_eq!(class(400), "permanent");
        assert_eq!(class(404), "permanent");
        assert_eq!(class(302), "permanent");
        assert!(from_response(StatusCode::BAD_GATEWAY, &h, b"").may_have_reached());
    }

    #[test]
    fn rate_limit_reads_retry_after_header() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            from_response(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }
}
