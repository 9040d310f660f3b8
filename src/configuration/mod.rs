//! Typed, layered settings: the compiled-in `config/default.toml`, then `config/{APP_ENV}.toml`,
//! then `BRIDGE__SECTION__KEY` environment variables. Invalid settings stop start-up with one line.
//!
//! One module per section, each checking itself; this one layers the sources and checks what
//! spans sections (the delivery lease against the calls it covers).

use std::path::Path;

use serde::Deserialize;

mod admin;
mod database;
mod delivery;
mod duration;
mod error;
mod http;
mod ingest;
mod log;
mod metrics;
mod retention;
mod secret;
mod sources;
mod tallyfy;

pub use admin::AdminSettings;
pub use database::{Backend, DatabaseSettings, Synchronous};
pub use delivery::DeliverySettings;
pub use error::ConfigError;
pub use http::HttpSettings;
pub use ingest::{AuthMode, InboundAuthSettings, IngestSettings};
pub use log::{LogFormat, LogSettings};
pub use metrics::MetricsSettings;
pub use retention::{MAX_BATCH_ROWS, RetentionSettings};
pub use secret::{INVENTED_MIN_CHARS, InventedSecret, Secret};
pub use sources::OwnerMembers;
pub use sources::{
    ENDPOINT_TOKEN_MIN_CHARS, HubSpotSettings, PipedriveSettings, SalesforceSettings,
    SourcesSettings,
};
pub use tallyfy::{TallyfyAuth, TallyfySettings};

use crate::delivery::policy::LEASE_MARGIN;

/// The documented defaults, compiled in so the binary runs from any working directory. The one
/// place a default is written: code that needs one loads this file (`Settings::defaults`).
const DEFAULTS: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "BRIDGE";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub ingest: IngestSettings,
    pub tallyfy: TallyfySettings,
    pub delivery: DeliverySettings,
    pub sources: SourcesSettings,
    pub admin: AdminSettings,
    pub metrics: MetricsSettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
}

impl Settings {
    /// Loads the layers for `APP_ENV` from `config_dir` and the process environment, then
    /// `overrides` (`BRIDGE__…` names), which win over everything; checks everything `serve`
    /// needs.
    pub fn load(config_dir: &Path, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let settings = Self::load_for_maintenance(config_dir, overrides)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The same layers, with only the checks every command needs: `migrate` and `healthcheck`
    /// must work without Tallyfy or webhook secrets.
    pub fn load_for_maintenance(
        config_dir: &Path,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let app_env = std::env::var("APP_ENV").ok().filter(|e| !e.is_empty());
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .chain(overrides.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Self::layered(config_dir, app_env.as_deref(), env)
    }

    /// The same layering and checks with the environment given explicitly, so tests need not
    /// mutate the process environment.
    pub fn from_sources(
        config_dir: &Path,
        app_env: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let settings = Self::layered(config_dir, app_env, env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// `config/default.toml` alone, with the checks every command needs: the defaults for code
    /// that builds one section by hand (fuzz targets), without a second copy of them.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::layered(Path::new(""), None, [])
    }

    fn layered(
        config_dir: &Path,
        app_env: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(app_env) = app_env {
            let file = config_dir.join(format!("{app_env}.toml"));
            if !file.exists() {
                return Err(ConfigError::other(format!(
                    "APP_ENV={app_env} but {} does not exist",
                    file.display()
                )));
            }
            builder = builder.add_source(config::File::from(file));
        }
        let env: config::Map<String, String> = env.into_iter().collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(ConfigError::from_load)?;
        settings.validate_common()?;
        Ok(settings)
    }

    /// Checks that hold for every command.
    fn validate_common(&self) -> Result<(), ConfigError> {
        self.log.validate()?;
        self.database.validate()
    }

    /// Everything `serve` needs: each section's own checks (the common ones already ran at
    /// load), then the rules that span sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.ingest.validate()?;
        if !self.http.enabled && !self.delivery.enabled {
            return Err(ConfigError::key(
                "http.enabled",
                "and delivery.enabled are both false: there is nothing to run",
            ));
        }
        if self.delivery.enabled {
            self.tallyfy.validate_for_delivery()?;
            self.delivery.validate()?;
            self.check_lease_covers_tallyfy()?;
        }
        self.sources.validate()?;
        self.retention.validate()?;
        self.admin.validate()?;
        self.check_crm_reads_end_inside_the_lease()?;
        self.ingest.auth.validate()
    }

    /// A lease shorter than the calls it covers would let a second worker start while the
    /// first is still talking to Tallyfy: the one way to create a guest twice.
    fn check_lease_covers_tallyfy(&self) -> Result<(), ConfigError> {
        let needed = self
            .tallyfy
            .request_timeout
            .saturating_mul(2)
            .saturating_add(LEASE_MARGIN);
        if self.delivery.lease < needed {
            return Err(ConfigError::key(
                "delivery.lease_secs",
                &format!(
                    "must be at least {} s (two tallyfy.request_timeout_ms plus a {} s margin)",
                    needed.as_millis().div_ceil(1000),
                    LEASE_MARGIN.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// A CRM read is made inside a delivery attempt, so it must end inside that attempt's
    /// lease, like a Tallyfy call.
    fn check_crm_reads_end_inside_the_lease(&self) -> Result<(), ConfigError> {
        for (crm, timeout) in self.sources.api_timeouts() {
            if timeout.is_zero() || timeout.saturating_add(LEASE_MARGIN) > self.delivery.lease {
                return Err(ConfigError::key(
                    &format!("sources.{crm}.request_timeout_ms"),
                    &format!(
                        "must be above 0 and at most delivery.lease_secs minus {} s",
                        LEASE_MARGIN.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
