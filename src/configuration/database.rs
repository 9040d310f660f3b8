//! `[database]`: the SQLite file, how hard each commit is synced, and the pool over it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::millis;
use super::error::{ConfigError, above_zero};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    #[serde(rename = "busy_timeout_ms", deserialize_with = "millis")]
    pub busy_timeout: Duration,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

impl DatabaseSettings {
    /// Every command opens the pool, `migrate` and `healthcheck` too.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("database.max_connections", self.max_connections > 0)
    }
}
