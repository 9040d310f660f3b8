//! `[metrics]`: whether `GET /metrics` serves Prometheus text, and the bearer token a scraper
//! must present (unset: open to whoever reaches the port).

use serde::Deserialize;

use super::secret::InventedSecret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// false: nothing is counted and `/metrics` answers 404.
    pub enabled: bool,
    /// Unset: `/metrics` is open. Its rules (non-blank, 16 characters) are the type's.
    pub token: Option<InventedSecret>,
}
