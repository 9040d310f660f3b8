//! Loading as a whole: layering, overrides, units, and the checks that span sections. The
//! sources' checks and the secrets' are in the two files beside this one.

mod secrets;
mod sources;
mod tallyfy;

use std::path::Path;
use std::time::Duration;

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
fn durations_load_in_the_unit_their_key_names() {
    let settings = load(&[
        SIGNED,
        ("BRIDGE__DELIVERY__LEASE_SECS", "120"),
        ("BRIDGE__DELIVERY__IDLE_POLL_MS", "250"),
    ])
    .expect("valid");
    assert_eq!(settings.delivery.lease, Duration::from_secs(120));
    assert_eq!(settings.delivery.idle_poll, Duration::from_millis(250));
    // The defaults, from default.toml: 10000 ms, 30 s.
    assert_eq!(settings.http.body_timeout, Duration::from_secs(10));
    assert_eq!(settings.http.shutdown_timeout, Duration::from_secs(30));
    let err = load(&[SIGNED, ("BRIDGE__DELIVERY__LEASE", "120")])
        .expect_err("the key keeps its unit")
        .to_string();
    assert!(err.contains("lease"), "{err}");
}

#[test]
fn the_defaults_are_default_toml_alone() {
    let defaults = Settings::defaults().expect("default.toml loads");
    assert_eq!(defaults.sources.salesforce.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(defaults.tallyfy.org_id, None);
    assert!(defaults.ingest.auth.signing_secret.is_none());
}

const SALESFORCE_TOKEN: &str = "3f9c1e6b2a7d48e0b5c4a9f1d2e3b4c5";

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
fn a_console_session_must_last_some_time() {
    let settings = load(&[SIGNED]).expect("defaults are valid");
    assert_eq!(settings.admin.console_session_secs, 28_800);
    let err = load(&[SIGNED, ("BRIDGE__ADMIN__CONSOLE_SESSION_SECS", "0")])
        .expect_err("zero")
        .to_string();
    assert!(err.contains("admin.console_session_secs"), "{err}");
}
