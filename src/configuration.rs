//! Typed, layered settings: the compiled-in `config/default.toml`, then `config/{APP_ENV}.toml`,
//! then `BRIDGE__SECTION__KEY` environment variables. Invalid settings stop start-up with one line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;

mod secret;
use secret::non_blank;
pub use secret::{INVENTED_MIN_CHARS, InventedSecret, Secret};

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
    pub tallyfy: TallyfySettings,
    pub delivery: DeliverySettings,
    pub sources: SourcesSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// Time a request's whole body may take to arrive once its headers are in.
    pub body_timeout_ms: u64,
    /// Open connections at once, all workers together; 0 = three quarters of the process's
    /// open-file limit, so a flood of idle connections cannot exhaust file descriptors.
    pub max_connections: usize,
    pub shutdown_timeout_secs: u64,
    pub workers: usize,
}

impl HttpSettings {
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_timeout_ms)
    }
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
    pub signing_secret: Option<Secret>,
    pub shared_secret: Option<InventedSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Signature,
    SharedSecret,
    None,
    /// `/webhooks/contacts` answers 404: a deployment that takes only CRM webhooks.
    Disabled,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyfySettings {
    pub base_url: String,
    #[serde(default, deserialize_with = "non_blank")]
    pub org_id: Option<String>,
    pub token: Option<Secret>,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub enabled: bool,
    pub concurrency: usize,
    pub lease_secs: u64,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub max_attempts: u32,
    pub max_age_secs: u64,
    pub rate_limit_default_secs: u64,
    pub paused_probe_secs: u64,
    pub idle_poll_ms: u64,
}

/// CRM-specific webhook endpoints (`POST /webhooks/{source}`); each is on once its keys are set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesSettings {
    pub pipedrive: PipedriveSettings,
    pub hubspot: HubSpotSettings,
    pub salesforce: SalesforceSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipedriveSettings {
    /// The webhook's "HTTP Auth username and password", as entered in Pipedrive.
    #[serde(deserialize_with = "non_blank")]
    pub username: Option<String>,
    pub password: Option<InventedSecret>,
    /// Optional API token: v2 webhooks carry the organisation's id only, and with a token the
    /// worker reads its name for the guest's company.
    pub api_token: Option<Secret>,
    pub api_base_url: String,
    pub request_timeout_ms: u64,
}

impl Default for PipedriveSettings {
    fn default() -> Self {
        Self {
            username: None,
            password: None,
            api_token: None,
            api_base_url: "https://api.pipedrive.com".into(),
            request_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSpotSettings {
    /// The app's client secret: the key of the v3 webhook signature.
    pub client_secret: Option<Secret>,
    /// The target URL exactly as entered in HubSpot: the signature covers it.
    #[serde(deserialize_with = "non_blank")]
    pub webhook_url: Option<String>,
    /// Private-app access token with `crm.objects.contacts.read`, to fetch created contacts.
    pub api_token: Option<Secret>,
    pub api_base_url: String,
    pub request_timeout_ms: u64,
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        Self {
            client_secret: None,
            webhook_url: None,
            api_token: None,
            api_base_url: "https://api.hubapi.com".into(),
            request_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesforceSettings {
    /// The org's id (15 or 18 characters); messages from any other org are refused.
    #[serde(deserialize_with = "non_blank")]
    pub organization_id: Option<String>,
    /// The last segment of the endpoint URL entered in Salesforce
    /// (`/webhooks/salesforce/{endpoint_token}`): Salesforce cannot sign its messages, and the
    /// org id is no secret.
    pub endpoint_token: Option<Secret<ENDPOINT_TOKEN_MIN_CHARS>>,
    /// A Contact field carrying the account name (e.g. a formula `Account_Name__c`), since an
    /// outbound message holds one object's fields only.
    #[serde(deserialize_with = "non_blank")]
    pub company_field: Option<String>,
    /// Largest outbound message accepted: 100 notifications can be far above `http.max_body_bytes`.
    pub max_body_bytes: usize,
}

/// Shortest `sources.salesforce.endpoint_token`: 32 characters, 128 bits or more as hex.
pub const ENDPOINT_TOKEN_MIN_CHARS: usize = 32;

impl Default for SalesforceSettings {
    fn default() -> Self {
        Self {
            organization_id: None,
            endpoint_token: None,
            company_field: None,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Unset: the admin endpoints answer 404.
    pub token: Option<InventedSecret>,
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

    /// Our own checks inside deserialisation (a blank secret) read like the others: the key
    /// first. `config`'s own messages ("invalid type: … for key `http.port`") stay as they are.
    fn from_load(error: config::ConfigError) -> Self {
        match error {
            config::ConfigError::At {
                error,
                key: Some(key),
                origin,
            } if matches!(*error, config::ConfigError::Message(_)) => {
                let place = origin.map(|o| format!(" (in {o})")).unwrap_or_default();
                Self(format!("`{key}` {error}{place}"))
            }
            other => Self(other.to_string()),
        }
    }
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
            .map_err(ConfigError::from_load)?;
        settings.validate_common()?;
        Ok(settings)
    }

    /// Checks that hold for every command.
    fn validate_common(&self) -> Result<(), ConfigError> {
        // A bare word would parse as a target name and silently log nothing useful.
        let levels = ["off", "error", "warn", "info", "debug", "trace"];
        let directives_ok = self.log.level.split(',').all(|d| {
            let d = d.trim();
            d.contains('=') || levels.contains(&d.to_ascii_lowercase().as_str())
        });
        if !directives_ok || tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::key(
                "log.level",
                "must be a level (error, warn, info, debug, trace) or a filter such as \"tallyfy_bridge=debug\"",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be above 0",
            ));
        }
        Ok(())
    }

    /// Checks everything `serve` needs (what `load` and `from_sources` check after layering).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.http.max_body_bytes == 0 {
            return Err(ConfigError::key("http.max_body_bytes", "must be above 0"));
        }
        if self.http.body_timeout_ms == 0 {
            return Err(ConfigError::key("http.body_timeout_ms", "must be above 0"));
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
        if !self.http.enabled && !self.delivery.enabled {
            return Err(ConfigError::key(
                "http.enabled",
                "and delivery.enabled are both false: there is nothing to run",
            ));
        }
        if self.delivery.enabled {
            self.validate_delivery()?;
        }
        self.validate_sources()?;
        let auth = &self.ingest.auth;
        match auth.mode {
            AuthMode::Signature if auth.signing_secret.is_none() => Err(ConfigError::key(
                "ingest.auth.signing_secret",
                "is required when ingest.auth.mode = \"signature\" (set BRIDGE__INGEST__AUTH__SIGNING_SECRET)",
            )),
            AuthMode::Signature
                if auth
                    .signing_secret
                    .as_ref()
                    .is_some_and(|secret| !is_signing_key(secret.expose_secret())) =>
            {
                Err(ConfigError::key(
                    "ingest.auth.signing_secret",
                    &format!(
                        "must be whsec_ followed by at least {SIGNING_KEY_MIN_BYTES} bytes in base64 (make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\")"
                    ),
                ))
            }
            AuthMode::SharedSecret if auth.shared_secret.is_none() => Err(ConfigError::key(
                "ingest.auth.shared_secret",
                "is required when ingest.auth.mode = \"shared_secret\" (set BRIDGE__INGEST__AUTH__SHARED_SECRET)",
            )),
            _ => Ok(()),
        }
    }

    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let (tallyfy, delivery) = (&self.tallyfy, &self.delivery);
        // Blank values never load (`non_blank`), so set means usable.
        if tallyfy.org_id.is_none() {
            return Err(ConfigError::key(
                "tallyfy.org_id",
                "is required for delivery (set BRIDGE__TALLYFY__ORG_ID, or try the bridge with `serve --sandbox`)",
            ));
        }
        if tallyfy.token.is_none() {
            return Err(ConfigError::key(
                "tallyfy.token",
                "is required for delivery (set BRIDGE__TALLYFY__TOKEN, or try the bridge with `serve --sandbox`)",
            ));
        }
        if delivery.concurrency == 0 {
            return Err(ConfigError::key("delivery.concurrency", "must be above 0"));
        }
        if delivery.max_attempts == 0 {
            return Err(ConfigError::key("delivery.max_attempts", "must be above 0"));
        }
        if delivery.retry_base_ms == 0 || delivery.retry_cap_ms < delivery.retry_base_ms {
            return Err(ConfigError::key(
                "delivery.retry_cap_ms",
                "must be at least delivery.retry_base_ms, which must be above 0",
            ));
        }
        // A lease shorter than the calls it covers would let a second worker start while the
        // first is still talking to Tallyfy: the one way to create a guest twice.
        let needed_ms = 2 * tallyfy.request_timeout_ms + LEASE_MARGIN_MS;
        if delivery.lease_secs.saturating_mul(1000) < needed_ms {
            return Err(ConfigError::key(
                "delivery.lease_secs",
                &format!(
                    "must be at least {} s (two tallyfy.request_timeout_ms plus a {} s margin)",
                    needed_ms.div_ceil(1000),
                    LEASE_MARGIN_MS / 1000
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// A source is on once any of its keys is set; then all it needs must be set and usable.
    fn validate_sources(&self) -> Result<(), ConfigError> {
        let pipedrive = &self.sources.pipedrive;
        let username = pipedrive.username.is_some();
        if username != pipedrive.password.is_some() {
            let missing = if username { "password" } else { "username" };
            return Err(ConfigError::key(
                &format!("sources.pipedrive.{missing}"),
                "is required: Pipedrive sends both as HTTP Basic auth",
            ));
        }
        if username
            && pipedrive
                .username
                .as_deref()
                .is_some_and(|u| u.contains(':'))
        {
            return Err(ConfigError::key(
                "sources.pipedrive.username",
                "must not contain ':' (HTTP Basic auth cannot carry it)",
            ));
        }
        if pipedrive.api_token.is_some() {
            if !username {
                return Err(ConfigError::key(
                    "sources.pipedrive.username",
                    "and password are required once sources.pipedrive.api_token is set",
                ));
            }
            self.check_crm_api(
                "pipedrive",
                &pipedrive.api_base_url,
                pipedrive.request_timeout_ms,
            )?;
        }

        let hubspot = &self.sources.hubspot;
        let webhook_url = hubspot.webhook_url.as_deref();
        let set = [
            hubspot.client_secret.is_some(),
            webhook_url.is_some(),
            hubspot.api_token.is_some(),
        ];
        if set.contains(&true) {
            for (is_set, key) in set
                .iter()
                .zip(["client_secret", "webhook_url", "api_token"])
            {
                if !is_set {
                    return Err(ConfigError::key(
                        &format!("sources.hubspot.{key}"),
                        "is required once any sources.hubspot key is set",
                    ));
                }
            }
            if !is_http_url(webhook_url.unwrap_or_default()) {
                return Err(ConfigError::key(
                    "sources.hubspot.webhook_url",
                    "must be an http(s) URL",
                ));
            }
            self.check_crm_api("hubspot", &hubspot.api_base_url, hubspot.request_timeout_ms)?;
        }

        let salesforce = &self.sources.salesforce;
        if let Some(org) = salesforce.organization_id.as_deref() {
            if !matches!(org.len(), 15 | 18) || !org.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::key(
                    "sources.salesforce.organization_id",
                    "must be the org's 15- or 18-character id (Setup > Company Information)",
                ));
            }
            check_endpoint_token(salesforce.endpoint_token.as_ref())?;
            if salesforce.max_body_bytes == 0 {
                return Err(ConfigError::key(
                    "sources.salesforce.max_body_bytes",
                    "must be above 0",
                ));
            }
        } else if salesforce.company_field.is_some() || salesforce.endpoint_token.is_some() {
            return Err(ConfigError::key(
                "sources.salesforce.organization_id",
                "is required once any sources.salesforce key is set",
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// A CRM API the worker reads: an http(s) root, and a timeout that ends inside the lease of
    /// the attempt that calls it, like a Tallyfy call.
    fn check_crm_api(&self, crm: &str, base_url: &str, timeout_ms: u64) -> Result<(), ConfigError> {
        if !is_http_url(base_url) {
            return Err(ConfigError::key(
                &format!("sources.{crm}.api_base_url"),
                "must be an http(s) URL",
            ));
        }
        let lease_ms = self.delivery.lease_secs.saturating_mul(1000);
        if timeout_ms == 0 || timeout_ms + LEASE_MARGIN_MS > lease_ms {
            return Err(ConfigError::key(
                &format!("sources.{crm}.request_timeout_ms"),
                &format!(
                    "must be above 0 and at most delivery.lease_secs minus {} s",
                    LEASE_MARGIN_MS / 1000
                ),
            ));
        }
        Ok(())
    }
}

/// Long enough not to be guessed, and made of URL-safe characters only, so the URL Salesforce
/// calls and the path the bridge compares are the same bytes.
fn check_endpoint_token(
    token: Option<&Secret<ENDPOINT_TOKEN_MIN_CHARS>>,
) -> Result<(), ConfigError> {
    const KEY: &str = "sources.salesforce.endpoint_token";
    let Some(token) = token.map(|t| t.expose_secret()) else {
        return Err(ConfigError::key(
            KEY,
            "is required once sources.salesforce.organization_id is set: generate one with `openssl rand -hex 32`; Salesforce's endpoint URL is then https://<host>/webhooks/salesforce/<token>",
        ));
    };
    // Its length is the type's rule (`Secret<ENDPOINT_TOKEN_MIN_CHARS>`).
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(ConfigError::key(
            KEY,
            "may hold only letters, digits, '-', '.', '_' and '~' (it is a URL path segment)",
        ));
    }
    Ok(())
}

/// The least key size of a Standard Webhooks secret (the specification: 24 to 64 bytes). A
/// shorter one, `whsec_` alone above all (an empty key), is a key anyone can sign with.
const SIGNING_KEY_MIN_BYTES: usize = 24;

fn is_signing_key(secret: &str) -> bool {
    use base64::Engine;
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .is_ok_and(|key| key.len() >= SIGNING_KEY_MIN_BYTES)
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Time a worker keeps between its last call's deadline and the end of its lease.
pub const LEASE_MARGIN_MS: u64 = 5000;

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads with Tallyfy credentials present, plus `env`.
    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let base = [
            ("BRIDGE__TALLYFY__ORG_ID", "org-1"),
            ("BRIDGE__TALLYFY__TOKEN", "tallyfy-token-value"),
        ];
        let env = base
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()));
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
    fn a_bad_log_level_or_signing_secret_is_refused_by_key() {
        let err = load(&[SIGNED, ("BRIDGE__LOG__LEVEL", "verbose!!")])
            .expect_err("bad level")
            .to_string();
        assert!(err.contains("log.level"), "{err}");
        // Not base64, an empty key (anyone could sign with it), and a key under 24 bytes.
        for bad in [
            "whsec_not base64",
            "whsec_",
            "whsec_AA==",
            "whsec_b2xkb2xkb2xkb2xkb2xk",
        ] {
            let err = load(&[("BRIDGE__INGEST__AUTH__SIGNING_SECRET", bad)])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("ingest.auth.signing_secret"), "{bad}: {err}");
        }
    }

    #[test]
    fn maintenance_commands_need_no_secrets() {
        let settings = Settings::load_for_maintenance(Path::new("config"), &[]);
        assert!(settings.is_ok(), "{settings:?}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load(&[SIGNED, ("BRIDGE__HTTP__PROT", "1")])
            .expect_err("typo")
            .to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn delivery_needs_tallyfy_credentials_unless_disabled() {
        let env = [SIGNED].map(|(k, v)| (k.to_string(), v.to_string()));
        let err = Settings::from_sources(Path::new("config"), None, env.clone())
            .expect_err("no org")
            .to_string();
        assert!(err.contains("tallyfy.org_id"), "{err}");
        let ingest_only = env
            .into_iter()
            .chain([("BRIDGE__DELIVERY__ENABLED".to_string(), "false".to_string())]);
        assert!(Settings::from_sources(Path::new("config"), None, ingest_only).is_ok());
    }

    #[test]
    fn a_lease_shorter_than_two_calls_is_refused() {
        let err = load(&[
            SIGNED,
            ("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "30000"),
            ("BRIDGE__DELIVERY__LEASE_SECS", "60"),
        ])
        .expect_err("lease too short")
        .to_string();
        assert!(err.contains("delivery.lease_secs"), "{err}");
        assert!(err.contains("65 s"), "{err}");
    }

    #[test]
    fn a_half_configured_source_names_the_missing_key() {
        for (key, value, missing) in [
            ("PIPEDRIVE__USERNAME", "pd", "sources.pipedrive.password"),
            (
                "PIPEDRIVE__PASSWORD",
                "pipedrive-password-value",
                "sources.pipedrive.username",
            ),
            ("PIPEDRIVE__API_TOKEN", "t", "sources.pipedrive.username"),
            ("HUBSPOT__CLIENT_SECRET", "s", "sources.hubspot.webhook_url"),
            ("HUBSPOT__API_TOKEN", "t", "sources.hubspot.client_secret"),
            (
                "SALESFORCE__ORGANIZATION_ID",
                "00D",
                "sources.salesforce.organization_id",
            ),
            (
                "SALESFORCE__COMPANY_FIELD",
                "X__c",
                "sources.salesforce.organization_id",
            ),
            (
                "SALESFORCE__ORGANIZATION_ID",
                "00D5e000000AbCd",
                "sources.salesforce.endpoint_token",
            ),
            (
                "SALESFORCE__ENDPOINT_TOKEN",
                SALESFORCE_TOKEN,
                "sources.salesforce.organization_id",
            ),
        ] {
            let env = format!("BRIDGE__SOURCES__{key}");
            let err = load(&[SIGNED, (env.as_str(), value)])
                .expect_err("half configured")
                .to_string();
            assert!(err.contains(missing), "{key}: {err}");
        }
    }

    #[test]
    fn fully_configured_sources_load_from_the_environment() {
        let mut env = SECRET_KEYS.to_vec();
        env.push(SIGNED);
        let settings = load(&env).expect("valid");
        assert_eq!(settings.sources.pipedrive.username.as_deref(), Some("pd"));
        assert_eq!(
            settings.sources.hubspot.api_base_url,
            "https://api.hubapi.com"
        );
        let printed = format!("{settings:?}");
        let not_secret = ["USERNAME", "WEBHOOK_URL", "ORGANIZATION_ID"];
        for (key, value) in SECRET_KEYS {
            if !not_secret.iter().any(|k| key.ends_with(k)) {
                assert!(!printed.contains(value), "{key}: {printed}");
            }
        }
        assert_eq!(settings.sources.salesforce.max_body_bytes, 4 * 1024 * 1024);
    }

    const SALESFORCE_TOKEN: &str = "3f9c1e6b2a7d48e0b5c4a9f1d2e3b4c5";

    #[test]
    fn a_short_or_url_unsafe_salesforce_token_or_a_zero_body_limit_is_refused() {
        let org = (
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            "00D5e000000AbCd",
        );
        let token = |value| ("BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN", value);
        let short = &SALESFORCE_TOKEN[..31];
        let slash = format!("{}/x", &SALESFORCE_TOKEN[..31]);
        for (bad, problem) in [
            (short, "at least 32 characters"),
            (slash.as_str(), "URL path segment"),
        ] {
            let err = load(&[SIGNED, org, token(bad)])
                .expect_err("bad token")
                .to_string();
            assert!(err.contains("sources.salesforce.endpoint_token"), "{err}");
            assert!(err.contains(problem), "{err}");
            assert!(!err.contains(short), "the token is echoed: {err}");
        }
        assert!(load(&[SIGNED, org, token(&SALESFORCE_TOKEN[..32])]).is_ok());
        let err = load(&[
            SIGNED,
            org,
            token(SALESFORCE_TOKEN),
            ("BRIDGE__SOURCES__SALESFORCE__MAX_BODY_BYTES", "0"),
        ])
        .expect_err("zero limit")
        .to_string();
        assert!(err.contains("sources.salesforce.max_body_bytes"), "{err}");
    }

    /// Every key that holds a secret, or that switches a check on, with a value that works.
    const SECRET_KEYS: [(&str, &str); 11] = [
        (
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            "00D5e000000AbCd",
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN,
        ),
        ("BRIDGE__ADMIN__TOKEN", "admin-token-0123456789"),
        (
            "BRIDGE__INGEST__AUTH__SHARED_SECRET",
            "shared-secret-0123456789",
        ),
        ("BRIDGE__TALLYFY__TOKEN", "tallyfy-token-value"),
        ("BRIDGE__SOURCES__PIPEDRIVE__USERNAME", "pd"),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            "pipedrive-password-value",
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN",
            "pipedrive-token-value",
        ),
        (
            "BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET",
            "hubspot-secret-value",
        ),
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", "hubspot-token-value"),
        (
            "BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL",
            "https://b.example.com/webhooks/hubspot",
        ),
    ];

    fn key_of(env: &str) -> String {
        env.trim_start_matches("BRIDGE__")
            .replace("__", ".")
            .to_ascii_lowercase()
    }

    #[test]
    fn an_empty_or_blank_secret_is_refused_naming_its_key() {
        let mut keys = SECRET_KEYS.to_vec();
        keys.push(("BRIDGE__INGEST__AUTH__SIGNING_SECRET", ""));
        keys.push(("BRIDGE__TALLYFY__ORG_ID", ""));
        for (key, _) in keys {
            for blank in ["", "   ", "\t"] {
                // Everything else set and valid: only the blank key can be the reason.
                let mut env: Vec<(&str, &str)> = SECRET_KEYS
                    .iter()
                    .copied()
                    .filter(|(k, _)| *k != key)
                    .collect();
                if key != SIGNED.0 {
                    env.push(SIGNED);
                }
                env.push((key, blank));
                let err = load(&env).expect_err(key).to_string();
                assert!(err.contains(&format!("`{}`", key_of(key))), "{key}: {err}");
                assert!(err.contains("empty"), "{key}: {err}");
            }
        }
    }

    #[test]
    fn the_issues_empty_credentials_are_configuration_errors() {
        // An empty admin token used to let any request read deliveries.
        let err = load(&[SIGNED, ("BRIDGE__ADMIN__TOKEN", "")]).expect_err("empty admin");
        assert!(err.to_string().contains("admin.token"), "{err}");
        // An empty Pipedrive pair used to accept `curl -u :`.
        let err = load(&[
            SIGNED,
            ("BRIDGE__SOURCES__PIPEDRIVE__USERNAME", ""),
            ("BRIDGE__SOURCES__PIPEDRIVE__PASSWORD", ""),
        ])
        .expect_err("empty pipedrive");
        assert!(err.to_string().contains("sources.pipedrive."), "{err}");
        // Three empty HubSpot keys used to accept a signature made with an empty key.
        let err = load(&[
            SIGNED,
            ("BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET", ""),
            ("BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL", ""),
            ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", ""),
        ])
        .expect_err("empty hubspot");
        assert!(err.to_string().contains("sources.hubspot."), "{err}");
    }

    #[test]
    fn invented_secrets_need_sixteen_characters() {
        for key in [
            "BRIDGE__ADMIN__TOKEN",
            "BRIDGE__INGEST__AUTH__SHARED_SECRET",
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
        ] {
            let mut env: Vec<(&str, &str)> = SECRET_KEYS
                .iter()
                .copied()
                .filter(|(k, _)| *k != key)
                .collect();
            env.push(SIGNED);
            env.push((key, "fifteen-chars-x"));
            let err = load(&env).expect_err(key).to_string();
            assert!(err.contains(&format!("`{}`", key_of(key))), "{key}: {err}");
            assert!(err.contains("at least 16 characters"), "{key}: {err}");
            env.pop();
            env.push((key, "sixteen-chars-xy"));
            load(&env).expect(key);
        }
    }

    #[test]
    fn secrets_never_print() {
        let settings = load(&[SIGNED]).expect("valid");
        let printed = format!("{settings:?}");
        for secret in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tallyfy-token-value"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }
}
