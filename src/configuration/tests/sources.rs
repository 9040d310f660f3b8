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
fn a_pipedrive_webhook_url_needs_the_api_token_and_an_http_url() {
    let basic = [
        ("BRIDGE__SOURCES__PIPEDRIVE__USERNAME", "pd"),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            "pipedrive-password-value",
        ),
    ];
    let token = ("BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN", "t");
    let url = |value| ("BRIDGE__SOURCES__PIPEDRIVE__WEBHOOK_URL", value);
    let good = "https://bridge.example.com/webhooks/pipedrive";
    let err = load(&[SIGNED, basic[0], basic[1], url(good)])
        .expect_err("no token")
        .to_string();
    assert!(
        err.contains("sources.pipedrive.webhook_url") && err.contains("api_token"),
        "{err}"
    );
    for bad in [
        "bridge.example.com/webhooks/pipedrive",
        "ftp://bridge/x",
        "https://",
    ] {
        let err = load(&[SIGNED, basic[0], basic[1], token, url(bad)])
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("sources.pipedrive.webhook_url"),
            "{bad}: {err}"
        );
    }
    let settings = load(&[SIGNED, basic[0], basic[1], token, url(good)]).expect("valid");
    assert_eq!(
        settings.sources.pipedrive.webhook_url.as_deref(),
        Some(good)
    );
    let unset = load(&[SIGNED]).expect("valid");
    assert_eq!(unset.sources.pipedrive.webhook_url, None);
}
