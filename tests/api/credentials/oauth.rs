//! OAuth modes: renewed before `expires_in` runs out on the driven clock, renewed and retried
//! once after a 401, carried across a restart, and paused with the settings to fix on refusal.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use secrecy::SecretString;
use tallyfy_bridge::domain::Guest;
use tallyfy_bridge::domain::outcome::Outcome;
use tallyfy_bridge::tallyfy::{ClientConfig, Credentials, OAuthConfig, TallyfyClient};
use tallyfy_sandbox::SandboxConfig;

use super::{AuthEnv, all_delivered, bridge, client_credentials, password, sandbox};
use crate::delivery::clock::ManualClock;

/// The sandbox's announced lifetime; renewal is due 5 minutes (the cap) before it ends.
const TTL: Duration = Duration::from_secs(3600);

fn short_lived() -> SandboxConfig {
    SandboxConfig {
        token_ttl_secs: TTL.as_secs(),
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn client_credentials_deliver_through_expiries_without_a_pause_or_a_second_create() {
    // Arrange
    let sandbox = sandbox(short_lived()).await;
    let settings = bridge(
        &sandbox,
        "unused",
        &client_credentials(&sandbox, "sandbox-client-secret"),
    );
    let env = AuthEnv::start(sandbox, &settings).await;
    let mut emails = Vec::new();

    // Act: a first token, then alternately an expiry the sandbox forces (the bridge learns it
    // from a 401) and one the driven clock reaches (the bridge renews before calling).
    for round in 0..6 {
        let email = format!("round{round}@example.com");
        if round % 2 == 1 {
            env.sandbox.expire_tokens();
        } else if round > 0 {
            env.clock.advance(TTL - Duration::from_secs(299));
        }
        env.post(&email).await;
        let outcomes = env.drain().await;
        emails.push(email);

        // Assert
        all_delivered(&outcomes);
        assert_eq!(env.grants("client_credentials"), round + 1, "round {round}");
    }
    let stats = env.sandbox.stats();
    assert_eq!(
        stats.unauthorized, 3,
        "one 401 per forced expiry, renewed ahead otherwise"
    );
    assert_eq!(stats.token_refusals, 0);
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    env.assert_created_once(&emails);
    let status = env.status().await;
    assert_eq!(status["delivery"]["paused"], false);
    let credentials = &status["tallyfy"]["credentials"];
    assert_eq!(credentials["mode"], "client_credentials");
    assert!(credentials["last_renewal_at"].is_string(), "{credentials}");
    assert!(credentials["last_renewal_error"].is_null(), "{credentials}");
    assert_eq!(credentials["expires_in_days"], 0);
    assert!(
        !status.to_string().contains("sbx_at_"),
        "a token in /status"
    );
}

#[tokio::test]
async fn a_restart_mid_run_asks_for_a_new_token_and_creates_nothing_twice() {
    // Arrange: two delivered, then an expiry and two more queued when the bridge restarts.
    let sandbox = sandbox(short_lived()).await;
    let settings = bridge(
        &sandbox,
        "unused",
        &client_credentials(&sandbox, "sandbox-client-secret"),
    );
    let env = AuthEnv::start(sandbox, &settings).await;
    for email in ["a@example.com", "b@example.com"] {
        env.post(email).await;
    }
    all_delivered(&env.drain().await);
    env.sandbox.expire_tokens();
    for email in ["c@example.com", "d@example.com"] {
        env.post(email).await;
    }

    // Act
    let env = env.restart().await;
    let outcomes = env.drain().await;
    env.post("a@example.com").await;
    let again = env.drain().await;

    // Assert: the new process asked once and met no 401 (the token lives in memory only).
    all_delivered(&outcomes);
    assert_eq!(outcomes.len(), 2);
    all_delivered(&again);
    assert_eq!(env.grants("client_credentials"), 2);
    assert_eq!(env.sandbox.stats().unauthorized, 0);
    env.assert_created_once(&[
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]);
}

#[tokio::test]
async fn password_mode_refreshes_and_falls_back_to_the_password_when_the_refresh_is_refused() {
    // Arrange
    let sandbox = sandbox(short_lived()).await;
    let settings = bridge(&sandbox, "unused", &password(&sandbox));
    let env = AuthEnv::start(sandbox, &settings).await;

    // Act + Assert: first token by password ...
    env.post("p1@example.com").await;
    all_delivered(&env.drain().await);
    assert_eq!(
        (env.grants("password"), env.grants("refresh_token")),
        (1, 0)
    );
    // ... a forced expiry: refreshed after the 401 ...
    env.sandbox.expire_tokens();
    env.post("p2@example.com").await;
    all_delivered(&env.drain().await);
    assert_eq!(
        (env.grants("password"), env.grants("refresh_token")),
        (1, 1)
    );
    // ... the clock passing expires_in: refreshed ahead ...
    env.clock.advance(TTL);
    env.post("p3@example.com").await;
    all_delivered(&env.drain().await);
    assert_eq!(
        (env.grants("password"), env.grants("refresh_token")),
        (1, 2)
    );
    // ... and a refresh token refused: the password again, still without a pause.
    env.sandbox.revoke_refresh_tokens();
    env.sandbox.expire_tokens();
    env.post("p4@example.com").await;
    all_delivered(&env.drain().await);
    assert_eq!(
        (env.grants("password"), env.grants("refresh_token")),
        (2, 3)
    );
    env.assert_created_once(&[
        "p1@example.com",
        "p2@example.com",
        "p3@example.com",
        "p4@example.com",
    ]);
}

#[tokio::test]
async fn a_wrong_client_secret_pauses_with_what_to_fix_and_never_the_secret() {
    // Arrange
    let sandbox = sandbox(SandboxConfig::default()).await;
    let wrong = "wrong-client-secret-4711";
    let settings = bridge(&sandbox, "unused", &client_credentials(&sandbox, wrong));
    let env = AuthEnv::start(sandbox, &settings).await;
    env.post("w@example.com").await;

    // Act
    let outcomes = env.drain().await;

    // Assert
    let [Outcome::Paused { reason, status }] = outcomes.as_slice() else {
        panic!("one pause expected: {outcomes:?}");
    };
    assert_eq!(*status, Some(401));
    assert!(reason.contains("(HTTP 401 invalid_client)"), "{reason}");
    assert!(
        reason.contains("check tallyfy.client_id and tallyfy.client_secret"),
        "{reason}"
    );
    assert!(!reason.contains(wrong), "{reason}");
    assert_eq!(env.sandbox.stats().requests.get("create_guest"), None);
    let status = env.status().await;
    assert_eq!(status["delivery"]["paused"], true);
    assert_eq!(status["delivery"]["paused_reason"], reason.as_str());
    let credentials = &status["tallyfy"]["credentials"];
    let error = credentials["last_renewal_error"]
        .as_str()
        .expect("an error");
    assert!(error.contains("invalid_client"), "{credentials}");
    assert!(credentials["last_renewal_at"].is_null());
    assert!(!status.to_string().contains(wrong));
    let (state, attempts): (String, i64) = sqlx::query_as("SELECT state, attempts FROM outbox")
        .fetch_one(&env.app.db().await)
        .await
        .expect("row");
    assert_eq!(
        (state.as_str(), attempts),
        ("retrying", 0),
        "attempt given back"
    );
}

/// The client alone on a clock of its own: `Credentials::oauth` as `serve` builds it.
fn oauth_client(base_url: &str, clock: &ManualClock) -> TallyfyClient {
    let clock = clock.clone();
    let credentials = Credentials::oauth(
        OAuthConfig {
            token_url: format!("{base_url}/oauth/token"),
            client_id: "sandbox-client".into(),
            client_secret: SecretString::from("sandbox-client-secret"),
            user: None,
        },
        Duration::from_secs(1),
        Duration::from_secs(2),
        Arc::new(move || {
            use tallyfy_bridge::delivery::policy::Clock;
            clock.now_ms()
        }),
    )
    .expect("credentials");
    TallyfyClient::new(ClientConfig {
        base_url: base_url.to_owned(),
        org_id: "demo-org".into(),
        credentials: Arc::new(credentials),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
    })
    .expect("client")
}

#[tokio::test]
async fn a_401_renews_once_for_all_concurrent_callers_and_each_call_is_retried_once() {
    // Arrange
    let sandbox = sandbox(short_lived()).await;
    let clock = ManualClock::new(0);
    let client = oauth_client(&sandbox.base_url(), &clock);
    client
        .create_guest(&Guest::new("first@example.com"))
        .await
        .expect("created");
    sandbox.expire_tokens();

    // Act: eight creates at once, all sent with the token that just expired.
    let emails: Vec<String> = (0..8).map(|i| format!("c{i}@example.com")).collect();
    let client = &client;
    let results = join_all(
        emails
            .iter()
            .map(|email| async move { client.create_guest(&Guest::new(email.as_str())).await }),
    )
    .await;

    // Assert: every one created once; one renewal shared by all.
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    for email in &emails {
        assert_eq!(sandbox.create_count(email), 1, "{email}");
    }
    let stats = sandbox.stats();
    assert_eq!(stats.token_requests["client_credentials"], 2);
    assert!(stats.unauthorized <= 8, "{}", stats.unauthorized);
    assert_eq!(stats.requests["create_guest"], 1 + 8 + stats.unauthorized);
}

#[tokio::test]
async fn a_token_endpoint_outage_keeps_the_valid_token_then_pauses_at_its_expiry_and_resumes() {
    // Arrange: a token issued at the start, valid for an hour on the bridge's clock.
    let sandbox = sandbox(short_lived()).await;
    let settings = bridge(
        &sandbox,
        "unused",
        &client_credentials(&sandbox, "sandbox-client-secret"),
    );
    let env = AuthEnv::start(sandbox, &settings).await;
    env.post("o1@example.com").await;
    all_delivered(&env.drain().await);
    env.sandbox.fail_token_endpoint(Some(503));

    // Act 1: inside the renewal window the renewal fails; the token still works.
    env.clock.advance(TTL - Duration::from_secs(100));
    env.post("o2@example.com").await;
    let kept = env.drain().await;

    // Assert 1
    all_delivered(&kept);
    assert_eq!(env.grants("client_credentials"), 2);
    let status = env.status().await;
    let error = &status["tallyfy"]["credentials"]["last_renewal_error"];
    assert!(
        error.as_str().is_some_and(|e| e.contains("HTTP 503")),
        "{error}"
    );

    // Act 2: past its expiry, with the endpoint still down.
    env.clock.advance(Duration::from_secs(200));
    env.post("o3@example.com").await;
    let paused = env.drain().await;

    // Assert 2
    let [Outcome::Paused { reason, status }] = paused.as_slice() else {
        panic!("one pause expected: {paused:?}");
    };
    assert_eq!(*status, Some(503));
    assert!(
        reason.contains("the token endpoint failed (HTTP 503 server_error)"),
        "{reason}"
    );

    // Act 3: the endpoint is back; the next probe renews and delivery resumes.
    env.sandbox.fail_token_endpoint(None);
    let resumed = env.drain().await;

    // Assert 3
    all_delivered(&resumed);
    assert_eq!(env.status().await["delivery"]["paused"], false);
    env.assert_created_once(&["o1@example.com", "o2@example.com", "o3@example.com"]);
}
