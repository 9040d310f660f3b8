//! `[tallyfy]`: the API guests are created in, the credentials the worker uses, and how long
//! one call may take.

use std::time::Duration;

use serde::Deserialize;

use super::duration::millis;
use super::error::ConfigError;
use super::secret::{Secret, non_blank};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyfySettings {
    pub base_url: String,
    #[serde(default, deserialize_with = "non_blank")]
    pub org_id: Option<String>,
    pub token: Option<Secret>,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout: Duration,
    /// A whole call, connect to last body byte; the delivery lease must cover two of them.
    #[serde(rename = "request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout: Duration,
}

impl TallyfySettings {
    /// What the delivery worker cannot start without (ingest alone needs none of it).
    pub(super) fn validate_for_delivery(&self) -> Result<(), ConfigError> {
        // Blank values never load (`non_blank`, `Secret`), so set means usable.
        if self.org_id.is_none() {
            return Err(ConfigError::key(
                "tallyfy.org_id",
                "is required for delivery (set BRIDGE__TALLYFY__ORG_ID, or try the bridge with `serve --sandbox`)",
            ));
        }
        if self.token.is_none() {
            return Err(ConfigError::key(
                "tallyfy.token",
                "is required for delivery (set BRIDGE__TALLYFY__TOKEN, or try the bridge with `serve --sandbox`)",
            ));
        }
        Ok(())
    }
}
