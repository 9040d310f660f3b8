//! The real binary with every CRM source configured, logging down to trace: each CRM's request
//! is delivered through the built-in sandbox, and no credential or contact name reaches a log.

use std::process::Command;

use serde_json::json;

use super::{
    Bridge, FakeCrm, HUBSPOT_SECRET, HUBSPOT_TOKEN, HUBSPOT_URL, PIPEDRIVE_PASSWORD,
    PIPEDRIVE_TOKEN, PIPEDRIVE_USER, Remote, SALESFORCE_ORG, SALESFORCE_ORG_18, SALESFORCE_TOKEN,
    basic, hubspot, pipedrive, salesforce,
};
use crate::binary::{bridge, sandbox_url, start, wait_for_guests};
use crate::helpers::SIGNING_SECRET;

#[tokio::test]
async fn crm_webhooks_through_the_binary_are_delivered_and_leave_no_secret_in_trace_logs() {
    // Arrange
    let fake = FakeCrm::start().await;
    fake.add_contact(
        "5012",
        json!({"email": "ada@example.com", "firstname": "Augusta", "lastname": "Lovelace"}),
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("b.sqlite"));
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__SOURCES__PIPEDRIVE__USERNAME", PIPEDRIVE_USER)
        .env("BRIDGE__SOURCES__PIPEDRIVE__PASSWORD", PIPEDRIVE_PASSWORD)
        .env("BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN", PIPEDRIVE_TOKEN)
        .env("BRIDGE__SOURCES__PIPEDRIVE__API_BASE_URL", &fake.base_url)
        .env("BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET", HUBSPOT_SECRET)
        .env("BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL", HUBSPOT_URL)
        .env("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", HUBSPOT_TOKEN)
        .env("BRIDGE__SOURCES__HUBSPOT__API_BASE_URL", &fake.base_url)
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            SALESFORCE_ORG,
        )
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN,
        )
        .env("RUST_LOG", "trace")
        .env_remove("BRIDGE__DELIVERY__ENABLED")
        .args(["serve", "--sandbox", "--sandbox-addr", "127.0.0.1:0"]);
    let (mut child, lines, mut logs, port) = start(command);
    let sandbox = sandbox_url(&lines, &mut logs);
    let app = Remote {
        client: reqwest::Client::new(),
        address: format!("http://127.0.0.1:{port}"),
    };

    // Act: one contact from each CRM, and a refused Pipedrive request.
    let person = pipedrive::v1_added_person(4711, "grace@example.com");
    app.post_source("pipedrive", &pipedrive::auth(), person.to_string())
        .await;
    let wrong = [("authorization", basic(PIPEDRIVE_USER, "not-the-password"))];
    assert_eq!(
        app.post_source("pipedrive", &wrong, person.to_string())
            .await
            .status()
            .as_u16(),
        401
    );
    let response = hubspot::post_signed(&app, &json!([hubspot::creation(5012)])).await;
    assert_eq!(response.status().as_u16(), 200);
    // The second notification is refused: its log line must name its records, not its email.
    let message = salesforce::message(
        SALESFORCE_ORG_18,
        &[
            salesforce::contact("04l1", "babbage@example.com"),
            salesforce::contact("04l9", "Refused &lt;refused.person@example.com&gt;"),
        ],
    );
    assert_eq!(
        salesforce::post(&app, &message).await.status().as_u16(),
        200
    );
    // A wrong token, and the token where Salesforce admins sometimes put secrets: the query.
    let wrong_token = SALESFORCE_TOKEN.replace('9', "8");
    for path in [
        format!("salesforce/{wrong_token}"),
        format!("salesforce?token={SALESFORCE_TOKEN}"),
    ] {
        let response = salesforce::post_to(&app, &path, &message).await;
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    let guests = wait_for_guests(&app.client, &sandbox, 3).await;

    // Assert: delivered, a clean stop, and nothing secret in any log line.
    let mut emails: Vec<&str> = guests.iter().filter_map(|g| g["email"].as_str()).collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        [
            "ada@example.com",
            "babbage@example.com",
            "grace@example.com"
        ]
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert!(child.0.wait().expect("exits").success());
    // The child has exited: read its output to the end (the reader stops at EOF).
    logs.extend(lines.iter());
    let all = logs.join("\n");
    let basic_credentials = basic(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD);
    for secret in [
        PIPEDRIVE_PASSWORD,
        basic_credentials.trim_start_matches("Basic "),
        HUBSPOT_SECRET,
        HUBSPOT_TOKEN,
        PIPEDRIVE_TOKEN,
        SALESFORCE_TOKEN,
        &wrong_token,
        "Augusta",
        "Hopper",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into logs:\n{all}");
    }
    let refused = logs
        .iter()
        .find(|line| line.contains("CRM item refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{all}"));
    assert!(
        refused.contains("\"record_id\":\"00304l9\"")
            && refused.contains("\"notification_id\":\"04l9\""),
        "{refused}"
    );
    assert!(!all.contains("refused.person"), "{all}");
    // The request span still says which path was called.
    assert!(all.contains("/webhooks/salesforce/[REDACTED]"), "{all}");
}
