//! Upstream answers: Tallyfy's responses sorted by the shared classification, and `Retry-After`.

use std::time::{Duration, SystemTime};

use super::{Message, assert_tidy};
use crate::tallyfy::types::GuestId;
use crate::tallyfy::{CallError, error};
use crate::upstream::{self, parse_retry_after};

/// Never in an answer once scrubbed; long enough not to hide inside `[REDACTED]`.
const TALLYFY_TOKEN: &str = "tok_VERY_SECRET_value_42";
/// Longest excerpt `upstream` keeps, plus its `…`.
const EXCERPT_MAX: usize = 201;

/// Tallyfy's answers: the first word is the status. The class follows the status, text kept
/// from the body is one short line without the token, and a guest id is never blank.
pub fn tallyfy_response(data: &[u8]) {
    let message = Message::read(data);
    if let Some(id) = GuestId::from_body(message.body) {
        assert_tidy(id.as_str(), usize::MAX);
        assert_eq!(GuestId::from_body(message.body), Some(id));
    }
    let _ = upstream::excerpt(message.body);
    let Some(status) = message
        .switches
        .first()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|code| reqwest::StatusCode::from_u16(code).ok())
    else {
        return;
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &message.headers {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let code = status.as_u16();
    let classified = match upstream::classify(status, &headers, message.body, None) {
        Ok(()) => {
            assert!(status.is_success(), "{code} taken for a success");
            return;
        }
        Err(failure) => error::from_failure(failure, message.body),
    };
    assert_eq!(classified.status(), Some(code));
    let class_of_status = match code {
        429 => "rate_limited",
        401 | 403 => "unauthorized",
        422 => "unprocessable",
        408 | 500..=599 => "transient",
        _ => "permanent",
    };
    let class = match &classified {
        CallError::RateLimited { .. } | CallError::GuestCapReached { .. } => "rate_limited",
        CallError::Unauthorized { .. } => "unauthorized",
        CallError::Unprocessable { .. } => "unprocessable",
        CallError::Transient { .. } => "transient",
        CallError::Permanent { .. } => "permanent",
        // Only the token endpoint gives these, never a guest API answer.
        CallError::Credentials { .. } => "credentials",
    };
    assert_eq!(class, class_of_status);
    match &classified {
        CallError::Unprocessable { message: text }
        | CallError::Transient { detail: text, .. }
        | CallError::Permanent { excerpt: text, .. } => {
            assert!(!text.contains(['\n', '\r']), "{text:?}");
            assert!(text.chars().count() <= EXCERPT_MAX, "{text:?}");
        }
        CallError::RateLimited { .. }
        | CallError::GuestCapReached { .. }
        | CallError::Unauthorized { .. }
        | CallError::Credentials { .. } => {}
    }
    let scrubbed = classified.scrub(TALLYFY_TOKEN);
    assert!(!scrubbed.to_string().contains(TALLYFY_TOKEN));
    assert!(!format!("{scrubbed:?}").contains(TALLYFY_TOKEN));
}

/// `Retry-After`: delta-seconds are read exactly; a date gives the time from `now` to it, so
/// waits from two moments differ by the time between them (or are both zero past the date).
pub fn retry_after(data: &[u8]) {
    // The header's way in: any bytes, of which only visible ASCII reaches the parser.
    if let Ok(value) = reqwest::header::HeaderValue::from_bytes(data)
        && let Ok(text) = value.to_str()
    {
        let _ = parse_retry_after(text, SystemTime::now());
    }
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // The epoch, 2015-10-21 07:28:00 (the RFC's example), 9999-12-31 23:59:59.
    let moments = [0, 1_445_412_480, 253_402_300_799].map(at);
    let waits = moments.map(|now| parse_retry_after(value, now));
    assert_eq!(waits[1], parse_retry_after(value, moments[1]));
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let exact = trimmed.parse::<u64>().ok().map(Duration::from_secs);
        assert!(waits.iter().all(|wait| *wait == exact), "{value:?}");
        return;
    }
    let [Some(from_epoch), Some(from_2015), Some(from_9999)] = waits else {
        assert!(waits.iter().all(Option::is_none), "{value:?}: {waits:?}");
        return;
    };
    assert_eq!(from_9999, Duration::ZERO);
    if from_2015 > Duration::ZERO {
        assert_eq!(from_epoch - from_2015, Duration::from_secs(1_445_412_480));
    } else {
        assert!(from_epoch <= Duration::from_secs(1_445_412_480));
    }
}
