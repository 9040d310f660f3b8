//! `[delivery]`: the worker's concurrency, lease and retry schedule. How the lease must relate
//! to the calls it covers is checked across sections, in `Settings::validate`.

use std::time::Duration;

use serde::Deserialize;

use super::duration::{millis, secs};
use super::error::{ConfigError, above_zero};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub enabled: bool,
    pub concurrency: usize,
    /// How long a claimed row belongs to its worker.
    #[serde(rename = "lease_secs", deserialize_with = "secs")]
    pub lease: Duration,
    #[serde(rename = "retry_base_ms", deserialize_with = "millis")]
    pub retry_base: Duration,
    #[serde(rename = "retry_cap_ms", deserialize_with = "millis")]
    pub retry_cap: Duration,
    pub max_attempts: u32,
    /// Zero: no age limit.
    #[serde(rename = "max_age_secs", deserialize_with = "secs")]
    pub max_age: Duration,
    #[serde(rename = "rate_limit_default_secs", deserialize_with = "secs")]
    pub rate_limit_default: Duration,
    #[serde(rename = "paused_probe_secs", deserialize_with = "secs")]
    pub paused_probe: Duration,
    #[serde(rename = "idle_poll_ms", deserialize_with = "millis")]
    pub idle_poll: Duration,
    /// Creates per `create_window` at most, org-wide (Tallyfy's guest-invite cap); 0 = no limit.
    pub max_creates_per_hour: u32,
    #[serde(rename = "create_window_secs", deserialize_with = "secs")]
    pub create_window: Duration,
}

impl DeliverySettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("delivery.concurrency", self.concurrency > 0)?;
        above_zero("delivery.max_attempts", self.max_attempts > 0)?;
        if self.retry_base.is_zero() || self.retry_cap < self.retry_base {
            return Err(ConfigError::key(
                "delivery.retry_cap_ms",
                "must be at least delivery.retry_base_ms, which must be above 0",
            ));
        }
        above_zero("delivery.create_window_secs", !self.create_window.is_zero())?;
        Ok(())
    }

    /// The create budget the worker keeps to.
    pub fn pacing(&self) -> crate::domain::pacing::PacingLimit {
        crate::domain::pacing::PacingLimit {
            max_creates: self.max_creates_per_hour,
            window_ms: i64::try_from(self.create_window.as_millis()).unwrap_or(i64::MAX / 4),
        }
    }
}
