//! The real binary against the fake org: a reconcile with a token renewed mid-run, logged down
//! to trace, leaves neither the consumer secret nor an access token in any line; and
//! `connect salesforce` prints the setup with this bridge's endpoint URL, never the secret.

use std::process::Command;

use serde_json::{Value, json};

use super::api_keys;
use crate::binary::{BINARY, bridge, sandbox_url, start, wait_for_guests};
use crate::reconcile::ADMIN_TOKEN;
use crate::reconcile::fake_salesforce::{FakeSalesforce, SF_CLIENT_SECRET};
use crate::sources::{SALESFORCE_ORG, SALESFORCE_TOKEN};

/// The fake's access tokens all start so (`00D…!AQ4AQFake<n>`).
const TOKEN_PREFIX: &str = "!AQ4AQFake";

#[tokio::test]
async fn a_reconcile_through_the_binary_leaves_no_secret_or_token_in_trace_logs() {
    // Arrange: two Contacts, one a batch, the token expiring after the first.
    let org = FakeSalesforce::start().await;
    for (id, email, name) in [
        ("003Hn00000BinA1AA", "bin.one@example.com", "Augusta"),
        ("003Hn00000BinA2AA", "bin.two@example.com", "Grace"),
    ] {
        let created = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
        org.add_contact(id, &created, json!({"Email": email, "FirstName": name}));
    }
    org.set_batch_size(1);
    org.expire_tokens_after(1);
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("b.sqlite"));
    for (key, value) in api_keys(&org, &[]) {
        command.env(key, value);
    }
    command
        .env("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN)
        .env(
            "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
            crate::helpers::SIGNING_SECRET,
        )
        .env("BRIDGE__SOURCES__SALESFORCE__RECONCILE_EVERY_SECS", "0")
        .env("RUST_LOG", "trace")
        .env_remove("BRIDGE__DELIVERY__ENABLED")
        .args(["serve", "--sandbox", "--sandbox-addr", "127.0.0.1:0"]);
    let (mut child, lines, mut logs, port) = start(command);
    let sandbox = sandbox_url(&lines, &mut logs);
    let client = reqwest::Client::new();

    // Act
    let report: Value = client
        .post(format!("http://127.0.0.1:{port}/reconcile/salesforce"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"days": 1}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("a report");
    let guests = wait_for_guests(&client, &sandbox, 2).await;

    // Assert
    assert_eq!(report["queued"], 2, "{report}");
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(org.token_requests(), 2, "renewed once");
    assert_eq!(guests.len(), 2);
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert!(child.0.wait().expect("exits").success());
    logs.extend(lines.iter());
    let all = logs.join("\n");
    for secret in [SF_CLIENT_SECRET, TOKEN_PREFIX, "Augusta", "Grace"] {
        assert!(!all.contains(secret), "{secret} leaked into logs:\n{all}");
    }
    assert!(all.contains("Listed Salesforce Contacts"), "{all}");
}

#[test]
fn connect_salesforce_prints_the_setup_with_the_endpoint_url_and_no_secret() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("BRIDGE__TALLYFY__ORG_ID", "org-1")
        .env("BRIDGE__TALLYFY__TOKEN", "tallyfy-token-value")
        .env(
            "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
            crate::helpers::SIGNING_SECRET,
        )
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            SALESFORCE_ORG,
        )
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN,
        )
        .env(
            "BRIDGE__SOURCES__SALESFORCE__INSTANCE_URL",
            "https://acme.my.salesforce.com",
        )
        .env("BRIDGE__SOURCES__SALESFORCE__CLIENT_ID", "3MVG9.key")
        .env(
            "BRIDGE__SOURCES__SALESFORCE__CLIENT_SECRET",
            SF_CLIENT_SECRET,
        )
        .args([
            "connect",
            "salesforce",
            "--url",
            "https://bridge.example.com",
        ])
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = format!("https://bridge.example.com/webhooks/salesforce/{SALESFORCE_TOKEN}");
    assert!(
        printed.contains(&format!("Endpoint URL:  {url}\n")),
        "{printed}"
    );
    assert!(
        printed.contains("INSTANCE_URL=https://acme.my.salesforce.com"),
        "{printed}"
    );
    assert!(printed.contains("CLIENT_SECRET=(set)"), "{printed}");
    assert!(!printed.contains(SF_CLIENT_SECRET), "{printed}");
}
