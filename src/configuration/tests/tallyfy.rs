//! `tallyfy.auth`: each mode requires its own keys, an empty one is an error naming it, and no
//! credential is ever printed.

use super::*;

const ORG: (&str, &str) = ("BRIDGE__TALLYFY__ORG_ID", "org-1");

/// Loads with only `env` (no token from the shared `load`), plus the signing secret.
fn load_only(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env = [SIGNED, ORG]
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::from_sources(Path::new("config"), None, env)
}

const CLIENT: [(&str, &str); 3] = [
    ("BRIDGE__TALLYFY__AUTH", "client_credentials"),
    ("BRIDGE__TALLYFY__CLIENT_ID", "client-7"),
    ("BRIDGE__TALLYFY__CLIENT_SECRET", "client-secret-value"),
];

const PASSWORD: [(&str, &str); 5] = [
    ("BRIDGE__TALLYFY__AUTH", "password"),
    ("BRIDGE__TALLYFY__CLIENT_ID", "client-7"),
    ("BRIDGE__TALLYFY__CLIENT_SECRET", "client-secret-value"),
    ("BRIDGE__TALLYFY__USERNAME", "bridge@example.com"),
    ("BRIDGE__TALLYFY__PASSWORD", "user-password-value"),
];

#[test]
fn token_mode_is_the_default_and_needs_the_token() {
    let settings = load(&[SIGNED]).expect("valid");
    assert_eq!(settings.tallyfy.auth, TallyfyAuth::Token);
    assert_eq!(
        settings.tallyfy.token_url,
        "https://go.tallyfy.com/oauth/token"
    );
    let err = load_only(&[]).expect_err("no token").to_string();
    assert!(err.contains("`tallyfy.token`"), "{err}");
    assert!(err.contains("BRIDGE__TALLYFY__TOKEN"), "{err}");
}

#[test]
fn each_oauth_mode_names_the_first_key_it_misses() {
    assert!(load_only(&CLIENT).is_ok());
    assert!(load_only(&PASSWORD).is_ok());
    for (mode, keys) in [
        ("client_credentials", &CLIENT[..]),
        ("password", &PASSWORD[..]),
    ] {
        for missing in &keys[1..] {
            let env: Vec<_> = keys.iter().copied().filter(|k| k != missing).collect();
            let err = load_only(&env).expect_err(missing.0).to_string();
            let key = key_of(missing.0);
            assert!(err.contains(&format!("`{key}`")), "{mode}/{key}: {err}");
            assert!(err.contains(mode), "{mode}/{key}: {err}");
        }
    }
}

#[test]
fn an_empty_oauth_secret_is_an_error_naming_it_never_no_check() {
    for key in [
        "BRIDGE__TALLYFY__CLIENT_SECRET",
        "BRIDGE__TALLYFY__PASSWORD",
        "BRIDGE__TALLYFY__CLIENT_ID",
        "BRIDGE__TALLYFY__USERNAME",
    ] {
        for blank in ["", "  "] {
            let mut env: Vec<_> = PASSWORD
                .iter()
                .copied()
                .filter(|(k, _)| *k != key)
                .collect();
            env.push((key, blank));
            let err = load_only(&env).expect_err(key).to_string();
            assert!(err.contains(&format!("`{}`", key_of(key))), "{key}: {err}");
            assert!(err.contains("empty"), "{key}: {err}");
        }
    }
}

#[test]
fn an_unknown_mode_or_a_bad_token_url_is_refused_by_key() {
    let err = load_only(&[("BRIDGE__TALLYFY__AUTH", "oauth")])
        .expect_err("unknown mode")
        .to_string();
    assert!(err.contains("tallyfy.auth"), "{err}");
    let mut env = CLIENT.to_vec();
    env.push(("BRIDGE__TALLYFY__TOKEN_URL", "go.tallyfy.com/oauth/token"));
    let err = load_only(&env).expect_err("bad url").to_string();
    assert!(err.contains("`tallyfy.token_url`"), "{err}");
}

#[test]
fn no_oauth_credential_prints() {
    let settings = load_only(&PASSWORD).expect("valid");
    let printed = format!("{settings:?}");
    for secret in ["client-secret-value", "user-password-value"] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
}
