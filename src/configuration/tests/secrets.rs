//! Secrets: never blank, invented ones long enough, none ever printed.

use super::*;

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
