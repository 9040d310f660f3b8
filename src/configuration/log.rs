//! `[log]`: the format of log lines and the default filter (`RUST_LOG` overrides it).

use serde::Deserialize;

use super::error::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // A bare word would parse as a target name and silently log nothing useful.
        let levels = ["off", "error", "warn", "info", "debug", "trace"];
        let directives_ok = self.level.split(',').all(|d| {
            let d = d.trim();
            d.contains('=') || levels.contains(&d.to_ascii_lowercase().as_str())
        });
        if !directives_ok || tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(ConfigError::key(
                "log.level",
                "must be a level (error, warn, info, debug, trace) or a filter such as \"tallyfy_bridge=debug\"",
            ));
        }
        Ok(())
    }
}
