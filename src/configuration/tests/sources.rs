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

/// The Salesforce REST API keys of a connected app that work.
const SALESFORCE_API: [(&str, &str); 3] = [
    (
        "BRIDGE__SOURCES__SALESFORCE__INSTANCE_URL",
        "https://acme.my.salesforce.com",
    ),
    (
        "BRIDGE__SOURCES__SALESFORCE__CLIENT_ID",
        "3MVG9consumer.key",
    ),
    (
        "BRIDGE__SOURCES__SALESFORCE__CLIENT_SECRET",
        "salesforce-consumer-secret-0123",
    ),
];

#[test]
fn salesforce_api_keys_come_together_and_name_the_one_missing() {
    let settings = load(&[SIGNED]).expect("defaults");
    assert_eq!(settings.sources.salesforce.api_version, "v62.0");
    assert!(settings.sources.salesforce.instance_url.is_none());
    for (skip, (missing, _)) in SALESFORCE_API.iter().enumerate() {
        let env: Vec<_> = [SIGNED]
            .into_iter()
            .chain(
                SALESFORCE_API
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, kv)| *kv),
            )
            .collect();
        let err = load(&env).expect_err("two of three").to_string();
        let missing = missing
            .rsplit("__")
            .next()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            err.contains(&format!("sources.salesforce.{missing}")),
            "{err}"
        );
        assert!(!err.contains("salesforce-consumer-secret-0123"), "{err}");
    }
    let mut env = vec![SIGNED];
    env.extend(SALESFORCE_API);
    let settings = load(&env).expect("all three");
    let printed = format!("{:?}", settings.sources.salesforce);
    assert!(
        !printed.contains("salesforce-consumer-secret-0123"),
        "{printed}"
    );
    // The API alone (no outbound messages yet) is a valid start, company field included.
    env.push((
        "BRIDGE__SOURCES__SALESFORCE__COMPANY_FIELD",
        "Account_Name__c",
    ));
    assert!(load(&env).is_ok());
}

#[test]
fn a_plain_http_instance_a_bad_version_or_a_soql_unsafe_company_field_is_refused() {
    for (key, value, problem) in [
        (
            "INSTANCE_URL",
            "http://acme.my.salesforce.com",
            "https My Domain URL",
        ),
        (
            "INSTANCE_URL",
            "https://acme.my.salesforce.com/services/data",
            "https My Domain URL",
        ),
        ("API_VERSION", "62", "v62.0"),
        ("REQUEST_TIMEOUT_MS", "0", "above 0"),
        ("COMPANY_FIELD", "Name FROM User WHERE", "API name"),
    ] {
        let env_key = format!("BRIDGE__SOURCES__SALESFORCE__{key}");
        let mut env = vec![SIGNED];
        env.extend(SALESFORCE_API);
        env.push((env_key.as_str(), value));
        let err = load(&env).expect_err("refused").to_string();
        let key = key.to_lowercase();
        assert!(
            err.contains(&format!("sources.salesforce.{key}")),
            "{key}: {err}"
        );
        assert!(err.contains(problem), "{key}: {err}");
    }
    let mut env = vec![SIGNED];
    env.extend(SALESFORCE_API);
    env[1].1 = "http://127.0.0.1:8123";
    assert!(load(&env).is_ok(), "a local stand-in may be plain http");
}

/// `config` lowercases environment keys: the Salesforce lookup copes with an 18-character id.
#[test]
fn salesforce_owner_ids_from_the_environment_arrive_lowercased() {
    let owner = (
        "BRIDGE__SOURCES__SALESFORCE__OWNER_MEMBERS__005Hn00000ABCdeIAH",
        "42",
    );
    let settings = load(&[SIGNED, owner]).expect("valid");
    assert_eq!(
        settings
            .sources
            .salesforce
            .owner_members
            .members(Some("005hn00000abcdeiah")),
        Some(vec![42])
    );
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
