//! Times as operators read them: the database keeps Unix milliseconds, every HTTP answer shows
//! RFC 3339 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

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
