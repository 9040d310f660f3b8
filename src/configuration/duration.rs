//! Durations are read once, at load, from keys that carry their unit (`lease_secs`,
//! `timeout_ms`): the rest of the program sees a `Duration` and never multiplies by 1000.
//!
//! Used as `#[serde(rename = "lease_secs", deserialize_with = "secs")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A whole number of seconds.
pub(super) fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// A whole number of milliseconds.
pub(super) fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}
