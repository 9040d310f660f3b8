//! Typed, layered settings: the compiled-in `config/default.toml`, then `config/{APP_ENV}.toml`,
//! then `BRIDGE__SECTION__KEY` environment variables. Invalid settings stop start-up with one line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The documented defaults, compiled in so the binary runs from any working directory.
const DEFAULTS: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "BRIDGE";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub ingest: IngestSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    pub busy_timeout_ms: u64,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub max_batch: usize,
    pub queue_capacity: usize,
    pub auth: InboundAuthSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundAuthSettings {
    pub mode: AuthMode,
    pub signing_secret: Option<SecretString>,
    pub shared_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Signature,
    SharedSecret,
    None,
}

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

/// A setting that cannot be used, with the key that names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, problem: &str) -> Self {
        Self(format!("`{key}` {problem}"))
    }
}

impl Settings {
    /// Loads the layers for `APP_ENV` from `config_dir` and the process environment.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let app_env = std::env::var("APP_ENV").ok().filter(|e| !e.is_empty());
        let env = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX));
        Self::from_sources(config_dir, app_env.as_deref(), env)
    }

    /// The same layering with the environment given explicitly, so tests need not mutate the
    /// process environment.
    pub fn from_sources(
        config_dir: &Path,
        app_env: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(app_env) = app_env {
            let file = config_dir.join(format!("{app_env}.toml"));
            if !file.exists() {
                return Err(ConfigError(format!(
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
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.http.max_body_bytes == 0 {
            return Err(ConfigError::key("http.max_body_bytes", "must be above 0"));
        }
        if self.ingest.max_batch == 0 {
            return Err(ConfigError::key("ingest.max_batch", "must be above 0"));
        }
        if self.ingest.queue_capacity == 0 {
            return Err(ConfigError::key("ingest.queue_capacity", "must be above 0"));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be above 0",
            ));
        }
        let auth = &self.ingest.auth;
        let present = |s: &Option<SecretString>| {
            s.as_ref()
                .is_some_and(|s| !s.expose_secret().trim().is_empty())
        };
        match auth.mode {
            AuthMode::Signature if !present(&auth.signing_secret) => Err(ConfigError::key(
                "ingest.auth.signing_secret",
                "is required when ingest.auth.mode = \"signature\" (set BRIDGE__INGEST__AUTH__SIGNING_SECRET)",
            )),
            AuthMode::SharedSecret if !present(&auth.shared_secret) => Err(ConfigError::key(
                "ingest.auth.shared_secret",
                "is required when ingest.auth.mode = \"shared_secret\" (set BRIDGE__INGEST__AUTH__SHARED_SECRET)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_sources(Path::new("config"), None, env)
    }

    const SIGNED: (&str, &str) = (
        "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );

    #[test]
    fn defaults_load_once_a_signing_secret_is_given() {
        let settings = load(&[SIGNED]).expect("defaults are valid");
        assert_eq!(settings.http.port, 8080);
        assert_eq!(settings.database.synchronous, Synchronous::Full);
        assert_eq!(settings.ingest.auth.mode, AuthMode::Signature);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let settings = load(&[SIGNED, ("BRIDGE__HTTP__PORT", "9123")]).expect("valid");
        assert_eq!(settings.http.port, 9123);
    }

    #[test]
    fn missing_secret_names_the_key() {
        let err = load(&[]).expect_err("no secret").to_string();
        assert!(err.contains("ingest.auth.signing_secret"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let err = load(&[SIGNED, ("BRIDGE__HTTP__PORT", "eighty")])
            .expect_err("bad port")
            .to_string();
        assert!(err.contains("http.port"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load(&[SIGNED, ("BRIDGE__HTTP__PROT", "1")])
            .expect_err("typo")
            .to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let settings = load(&[SIGNED]).expect("valid");
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{printed}"
        );
        assert!(printed.contains("REDACTED"), "{printed}");
    }
}
