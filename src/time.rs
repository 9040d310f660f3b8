//! The bridge's one clock and its unit: the database keeps Unix milliseconds, every HTTP answer
//! shows them as RFC 3339 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Milliseconds since the Unix epoch: the time unit of every column.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn rfc3339(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `#[serde(serialize_with = "…")]` for a millisecond column.
pub fn serialize_ms<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    match rfc3339(*ms) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

/// The same for a nullable column.
pub fn serialize_opt_ms<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match ms.and_then(rfc3339) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}
