//! The real binary in an OAuth mode and with an expiring token: tokens renewed through a forced
//! expiry while delivering, the expiry warning at start, and no secret or token in its log.

use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use super::sandbox;
use crate::binary::{bridge, start};
use crate::helpers::{SIGNING_SECRET, signed_post};

const CLIENT_SECRET: &str = "sandbox-client-secret";

/// Polls `/status` until `delivered` rows are delivered (the real loop runs on its own).
async fn wait_delivered(client: &reqwest::Client, base: &str, delivered: i64) -> Value {
    for _ in 0..500 {
        let status: Value = client
            .get(format!("{base}/status"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if status["outbox"]["counts"]["delivered"] == delivered {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{delivered} rows were not delivered");
}

// Two threads: the test reads the log pipe while the sandbox answers on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_renews_through_an_expiry_and_logs_no_secret_or_token() {
    // Arrange
    let sandbox = sandbox(SandboxConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("b.sqlite"));
    command
        .env("BRIDGE__LOG__LEVEL", "debug")
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__DELIVERY__ENABLED", "true")
        .env("BRIDGE__TALLYFY__BASE_URL", sandbox.base_url())
        .env("BRIDGE__TALLYFY__ORG_ID", "demo-org")
        .env("BRIDGE__TALLYFY__AUTH", "client_credentials")
        .env("BRIDGE__TALLYFY__CLIENT_ID", "sandbox-client")
        .env("BRIDGE__TALLYFY__CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "BRIDGE__TALLYFY__TOKEN_URL",
            format!("{}/oauth/token", sandbox.base_url()),
        );
    let (child, lines, mut logs, port) = start(command);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |n: u32| {
        let body = json!({"email": format!("bin{n}@example.com")}).to_string();
        signed_post(
            &client,
            &format!("{base}/webhooks/contacts"),
            &format!("evt-{n}"),
            &body,
        )
        .send()
    };

    // Act
    assert_eq!(post(1).await.expect("sent").status().as_u16(), 202);
    wait_delivered(&client, &base, 1).await;
    sandbox.expire_tokens();
    assert_eq!(post(2).await.expect("sent").status().as_u16(), 202);
    let status = wait_delivered(&client, &base, 2).await;
    drop(child);
    logs.extend(lines.try_iter());

    // Assert
    assert_eq!(status["delivery"]["paused"], false);
    let stats = sandbox.stats();
    assert_eq!(stats.token_requests["client_credentials"], 2);
    assert_eq!((stats.creates, stats.unauthorized), (2, 1));
    let text = logs.join("\n");
    assert!(text.contains("Tallyfy token renewed"), "{text}");
    for secret in [CLIENT_SECRET, "sbx_at_", "sbx_rt_"] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}

#[test]
fn a_token_that_expires_within_two_weeks_is_warned_about_at_start() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = chrono::Utc::now().timestamp() + 5 * 86_400;
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#));
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("b.sqlite"));
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__DELIVERY__ENABLED", "true")
        .env("BRIDGE__TALLYFY__BASE_URL", "http://127.0.0.1:9")
        .env("BRIDGE__TALLYFY__ORG_ID", "demo-org")
        .env("BRIDGE__TALLYFY__TOKEN", &token);

    let (child, _lines, logs, _port) = start(command);
    drop(child);

    let warning = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "Tallyfy credentials expire soon")
        .unwrap_or_else(|| panic!("no warning in {logs:?}"));
    assert_eq!(warning["level"], "WARN");
    let text = warning.to_string();
    assert!(text.contains("expires in 4 days"), "{text}");
    assert!(!logs.join("\n").contains(&token), "the token in the log");
}
