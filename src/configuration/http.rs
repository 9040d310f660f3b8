//! `[http]`: where the webhook and status API listens, and how much a request may cost it.

use std::time::Duration;

use serde::Deserialize;

use super::duration::{millis, secs};
use super::error::{ConfigError, above_zero};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// Time a request's whole body may take to arrive once its headers are in.
    #[serde(rename = "body_timeout_ms", deserialize_with = "millis")]
    pub body_timeout: Duration,
    /// Open connections at once, all workers together; 0 = three quarters of the process's
    /// open-file limit, so a flood of idle connections cannot exhaust file descriptors.
    pub max_connections: usize,
    /// Whole seconds only: actix takes no finer grain.
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "secs")]
    pub shutdown_timeout: Duration,
    pub workers: usize,
}

impl HttpSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("http.max_body_bytes", self.max_body_bytes > 0)?;
        above_zero("http.body_timeout_ms", !self.body_timeout.is_zero())
    }
}
