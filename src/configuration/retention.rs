//! `[retention]`: how long rows in an end state, refused items and audit entries are kept, and
//! how often and in what batches the pruning runs. The guest ledger has no age: it is never pruned.

use std::time::Duration;

use serde::Deserialize;

use super::duration::secs;
use super::error::{ConfigError, above_zero};

/// The most rows one batch deletes: each batch holds the write lock while it runs, and ingest's
/// group commits wait for it.
pub const MAX_BATCH_ROWS: usize = 10_000;

/// Ages count from when a row reached its end state (its `updated_at`); zero keeps forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    #[serde(rename = "delivered_secs", deserialize_with = "secs")]
    pub delivered: Duration,
    #[serde(rename = "failed_secs", deserialize_with = "secs")]
    pub failed: Duration,
    #[serde(rename = "cancelled_secs", deserialize_with = "secs")]
    pub cancelled: Duration,
    /// Refused CRM items, by when they were refused.
    #[serde(rename = "refused_secs", deserialize_with = "secs")]
    pub refused: Duration,
    /// Admin audit entries, by when the action ran.
    #[serde(rename = "audit_secs", deserialize_with = "secs")]
    pub audit: Duration,
    /// How often the pruning runs.
    #[serde(rename = "every_secs", deserialize_with = "secs")]
    pub every: Duration,
    /// Rows deleted per transaction.
    pub batch_rows: usize,
}

impl RetentionSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("retention.every_secs", !self.every.is_zero())?;
        if self.batch_rows == 0 || self.batch_rows > MAX_BATCH_ROWS {
            return Err(ConfigError::key(
                "retention.batch_rows",
                &format!(
                    "must be between 1 and {MAX_BATCH_ROWS} (a batch holds the write lock while it runs)"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::configuration::Settings;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let base = [
            ("BRIDGE__DELIVERY__ENABLED", "false"),
            (
                "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ];
        let env = base
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_sources(Path::new("config"), None, env)
    }

    #[test]
    fn retention_defaults_keep_end_states_for_weeks_and_audit_for_a_year() {
        let retention = load(&[]).expect("defaults are valid").retention;
        let days = |n: u64| Duration::from_secs(n * 86_400);
        assert_eq!(retention.delivered, days(30));
        assert_eq!(retention.failed, days(90));
        assert_eq!(retention.cancelled, days(30));
        assert_eq!(retention.refused, days(90));
        assert_eq!(retention.audit, days(365));
        assert_eq!(retention.every, Duration::from_secs(300));
        assert_eq!(retention.batch_rows, 500);
    }

    #[test]
    fn zero_ages_are_allowed_and_bad_schedules_are_refused_by_key() {
        let kept = load(&[("BRIDGE__RETENTION__DELIVERED_SECS", "0")]).expect("0 keeps forever");
        assert!(kept.retention.delivered.is_zero());
        for (key, value, named) in [
            ("BRIDGE__RETENTION__EVERY_SECS", "0", "retention.every_secs"),
            ("BRIDGE__RETENTION__BATCH_ROWS", "0", "retention.batch_rows"),
            (
                "BRIDGE__RETENTION__BATCH_ROWS",
                "10001",
                "retention.batch_rows",
            ),
            (
                "BRIDGE__RETENTION__FAILED_SECS",
                "-1",
                "retention.failed_secs",
            ),
        ] {
            let err = load(&[(key, value)]).expect_err(key).to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }
}
