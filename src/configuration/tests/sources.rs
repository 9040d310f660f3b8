//! `[sources.*]`: a source is off, or whole and usable; a half-configured one names what is
//! missing.

use super::*;

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

#[test]
fn hubspot_connect_needs_the_app_id_and_the_developer_key_together() {
    let hubspot = [
        ("BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET", "hubspot-secret"),
        (
            "BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL",
            "https://bridge.example.com/webhooks/hubspot",
        ),
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", "hubspot-token"),
    ];
    let app = ("BRIDGE__SOURCES__HUBSPOT__APP_ID", "1234567");
    let key = (
        "BRIDGE__SOURCES__HUBSPOT__DEVELOPER_API_KEY",
        "hubspot-developer-key-value",
    );
    for (half, missing) in [
        (app, "sources.hubspot.developer_api_key"),
        (key, "sources.hubspot.app_id"),
    ] {
        let mut env = hubspot.to_vec();
        env.extend([SIGNED, half]);
        let err = load(&env).expect_err("half of connect").to_string();
        assert!(err.contains(missing), "{err}");
        assert!(!err.contains(key.1), "the key is echoed: {err}");
    }
    let mut env = hubspot.to_vec();
    env.extend([SIGNED, app, key]);
    let settings = load(&env).expect("valid");
    assert_eq!(settings.sources.hubspot.app_id, Some(1_234_567));
    assert!(!format!("{settings:?}").contains(key.1));
    assert_eq!(
        settings.sources.hubspot.search_interval,
        std::time::Duration::from_millis(250)
    );
    // Connect alone does not switch the webhook on half-configured.
    let err = load(&[SIGNED, app, key])
        .expect_err("no webhook keys")
        .to_string();
    assert!(err.contains("sources.hubspot.client_secret"), "{err}");
    let zero = ("BRIDGE__SOURCES__HUBSPOT__SEARCH_INTERVAL_MS", "0");
    let err = load(&[SIGNED, zero]).expect_err("no pacing").to_string();
    assert!(err.contains("sources.hubspot.search_interval_ms"), "{err}");
}
