//! The audit trail: every admin write leaves a row in the same transaction as its change, with
//! the request id the caller was answered with, readable newest first through `GET /audit`.

use serde_json::{Value, json};

use super::{Seed, admin_app, get, post, seed};

#[tokio::test]
async fn every_admin_write_is_audited_with_its_request_id_and_read_newest_first() {
    let app = admin_app().await;
    let db = app.db().await;
    let seeds: Vec<Seed> = ["failed", "queued", "failed", "failed", "delivered"]
        .into_iter()
        .map(|state| Seed {
            source: "hubspot",
            email: "audit@example.com",
            state,
            received_at: 1_796_119_200_000,
        })
        .collect();
    let ids = seed(&db, &seeds).await;
    let mut request_ids = Vec::new();
    for (path, body) in [
        (format!("/deliveries/{}/retry", ids[0]), None),
        (format!("/deliveries/{}/cancel", ids[1]), None),
        (
            "/deliveries/retry".into(),
            Some(json!({"state": "failed", "source": "hubspot"})),
        ),
        (
            "/deliveries/cancel".into(),
            Some(json!({"state": "retrying", "limit": 5})),
        ),
    ] {
        let response = post(&app, &path, body).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let id = response.headers()["x-request-id"]
            .to_str()
            .expect("header")
            .to_owned();
        request_ids.push(id);
    }
    // A refused change writes nothing, so it leaves no audit row.
    let refused = post(&app, &format!("/deliveries/{}/retry", ids[4]), None).await;
    assert_eq!(refused.status().as_u16(), 409);

    let (status, page) = get(&app, "/audit").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{page}");
    let summary: Vec<(&str, Value, Value, i64)> = items
        .iter()
        .map(|item| {
            (
                item["action"].as_str().expect("action"),
                item["target"].clone(),
                item["filter"].clone(),
                item["affected"].as_i64().expect("affected"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "bulk_cancel",
                Value::Null,
                json!({"filter": {"state": "retrying"}, "limit": 5}),
                0
            ),
            (
                "bulk_retry",
                Value::Null,
                json!({"filter": {"state": "failed", "source": "hubspot"}, "limit": 1000}),
                2
            ),
            ("cancel", json!(ids[1].to_string()), Value::Null, 1),
            ("retry", json!(ids[0].to_string()), Value::Null, 1),
        ]
    );
    let logged: Vec<&str> = items
        .iter()
        .rev()
        .map(|i| i["request_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        logged,
        request_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(items[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Paged like every list.
    let (_, first) = get(&app, "/audit?limit=3").await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, second) = get(&app, &format!("/audit?limit=3&cursor={cursor}")).await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["items"][0]["action"], "retry");
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn the_real_binary_logs_each_admin_write_at_info_with_its_request_id() {
    use std::time::Duration;

    use crate::binary::{bridge, start};
    use crate::helpers::SIGNING_SECRET;

    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("b.sqlite");
    let mut command = bridge(&db);
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__ADMIN__TOKEN", super::TOKEN)
        .env("BRIDGE__LOG__LEVEL", "info");
    let (_child, lines, _, port) = start(command);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&crate::helpers::file_database_url(&db))
        .await
        .expect("db");
    let id = seed(
        &pool,
        &[Seed {
            source: "hubspot",
            email: "logged@example.com",
            state: "failed",
            received_at: 1,
        }],
    )
    .await[0];

    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/deliveries/{id}/retry"))
        .bearer_auth(super::TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();

    let event = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("an Admin action line");
        assert!(!line.contains(super::TOKEN), "{line}");
        let event: Value = serde_json::from_str(&line).expect("JSON log");
        if event["message"] == "Admin action" {
            break event;
        }
    };
    assert_eq!(event["level"], "INFO", "{event}");
    assert_eq!(
        (&event["action"], &event["outbox_id"], &event["affected"]),
        (&json!("retry"), &json!(id), &json!(1))
    );
    assert_eq!(event["request_id"], request_id.as_str(), "{event}");
    assert!(!event.to_string().contains("logged@example.com"), "{event}");
}
