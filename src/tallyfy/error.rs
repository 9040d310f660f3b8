//! Tallyfy's own view of a failed call: the shared upstream classes, plus the 422 that may mean
//! "already a guest". The worker picks retry, look-up or fail from the class and its attempt
//! counter; `may_have_reached` is told to operators in the error text.

use std::time::Duration;

use serde_json::Value;

use crate::upstream::{EXCERPT_CHARS, Failure, excerpt, one_line, truncate};

/// Laravel's generic 422 message: says nothing the field errors don't.
const GENERIC_422: &str = "The given data was invalid.";

/// Why a Tallyfy call did not produce a result. Never carries the token.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// 429: wait, then try again; not the row's fault.
    #[error("rate limited by Tallyfy (retry after: {})", fmt_wait(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 429 whose body says the hourly guest-invite cap is reached: no create before the window
    /// ends (Retry-After), look-ups still fine.
    #[error("Tallyfy's hourly guest-invite cap is reached (retry after: {})", fmt_wait(.retry_after))]
    GuestCapReached { retry_after: Option<Duration> },
    /// 401/403: the token (or its access to the org) is bad; pause, don't fail rows.
    #[error("Tallyfy rejected the credentials (HTTP {status}): {}", credentials_hint(*status))]
    Unauthorized { status: u16 },
    /// No token could be had from the OAuth token endpoint: pause, don't fail rows. `reason`
    /// names the settings to check; `status` is the token endpoint's, `None` without an answer.
    #[error("{reason}")]
    Credentials { status: Option<u16>, reason: String },
    /// 422: ambiguous (the email may already be a guest): look it up before failing.
    #[error("Tallyfy rejected the data (HTTP 422): {message}")]
    Unprocessable { message: String },
    /// Worth retrying. `may_have_reached`: Tallyfy may have acted although no usable answer came
    /// back (the worker looks up before any later create in any case; operators read it here).
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
            Self::RateLimited { .. } | Self::GuestCapReached { .. } => Some(429),
            Self::Unauthorized { status } | Self::Permanent { status, .. } => Some(*status),
            Self::Unprocessable { .. } => Some(422),
            Self::Transient { status, .. } | Self::Credentials { status, .. } => *status,
        }
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
            Self::Credentials { reason, .. } => reason,
            Self::RateLimited { .. } | Self::GuestCapReached { .. } | Self::Unauthorized { .. } => {
                return self;
            }
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

/// Tallyfy's reading of a failed call; `body` is the response's (empty without one).
/// (A 404 on a look-up means "no such guest" and is handled by the caller.)
pub(crate) fn from_failure(failure: Failure, body: &[u8]) -> CallError {
    match failure {
        Failure::RateLimited { retry_after } if guest_cap_reached(body) => {
            CallError::GuestCapReached { retry_after }
        }
        Failure::RateLimited { retry_after } => CallError::RateLimited { retry_after },
        Failure::Unauthorized { status } => CallError::Unauthorized { status },
        // Ambiguous: the email may already be a guest.
        Failure::Unprocessable => CallError::Unprocessable {
            message: unprocessable_message(body),
        },
        Failure::NotFound => CallError::Permanent {
            status: 404,
            excerpt: excerpt(body),
        },
        Failure::Transient {
            status,
            may_have_reached,
            detail,
        } => CallError::Transient {
            may_have_reached,
            status,
            detail,
        },
        Failure::Permanent { status, excerpt } => CallError::Permanent { status, excerpt },
    }
}

/// Tallyfy's 429 for its hourly cap on guest invites (`"code": "RATE_LIMIT_EXCEEDED"`, "You've
/// reached the hourly limit for Guest Invite (30 per hour per organization)"), not a burst 429
/// (which carries the same code with another message). Read from the raw text, so a body that
/// is not quite JSON still counts.
fn guest_cap_reached(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("hourly limit") && text.contains("guest invite")
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

/// What an operator does about a refused token (the pause reason in `/status`).
fn credentials_hint(status: u16) -> &'static str {
    if status == 403 {
        "the token's user has no access to tallyfy.org_id"
    } else {
        "set a new tallyfy.token and restart (a personal access token expires after about 6 months \
         and when its user logs out), or check the OAuth client"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    #[test]
    fn a_refused_token_says_what_to_fix() {
        let expired = CallError::Unauthorized { status: 401 }.to_string();
        assert!(
            expired.contains("HTTP 401") && expired.contains("tallyfy.token"),
            "{expired}"
        );
        let forbidden = CallError::Unauthorized { status: 403 }.to_string();
        assert!(forbidden.contains("tallyfy.org_id"), "{forbidden}");
    }

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

    fn sorted(code: u16, headers: &HeaderMap, body: &[u8]) -> CallError {
        let status = StatusCode::from_u16(code).expect("a status");
        let failure = upstream::classify(status, headers, body, None).expect_err("a failure");
        from_failure(failure, body)
    }

    #[test]
    fn a_422_is_unprocessable_and_a_404_permanent_for_tallyfy() {
        let h = HeaderMap::new();
        assert_eq!(
            sorted(422, &h, br#"{"message":"Nope"}"#),
            CallError::Unprocessable {
                message: "Nope".into()
            }
        );
        assert_eq!(
            sorted(404, &h, b"gone"),
            CallError::Permanent {
                status: 404,
                excerpt: "gone".into()
            }
        );
        assert_eq!(
            sorted(403, &h, b""),
            CallError::Unauthorized { status: 403 }
        );
        assert!(matches!(
            sorted(502, &h, b""),
            CallError::Transient {
                may_have_reached: true,
                status: Some(502),
                ..
            }
        ));
        assert!(matches!(
            sorted(302, &h, b""),
            CallError::Permanent { status: 302, .. }
        ));
    }

    #[test]
    fn the_hourly_guest_invite_429_is_told_from_a_burst() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "1200".parse().expect("a value"));
        let cap = br#"{"message":"You've reached the hourly limit for Guest Invite (30 per hour per organization). Please try again later.","code":"RATE_LIMIT_EXCEEDED"}"#;
        assert_eq!(
            sorted(429, &h, cap),
            CallError::GuestCapReached {
                retry_after: Some(Duration::from_secs(1200))
            }
        );
        let burst = br#"{"message":"Too Many Attempts.","code":"RATE_LIMIT_EXCEEDED"}"#;
        assert!(matches!(
            sorted(429, &h, burst),
            CallError::RateLimited { .. }
        ));
        assert!(matches!(
            sorted(429, &h, b"Hourly limit reached"),
            CallError::RateLimited { .. }
        ));
    }

    #[test]
    fn rate_limit_reads_retry_after_header() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().expect("a value"));
        assert_eq!(
            sorted(429, &h, b""),
            CallError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }
}
