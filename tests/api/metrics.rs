//! `GET /metrics` as Prometheus scrapes it: what the bridge did (webhooks, commits, deliveries,
//! Tallyfy and CRM calls) with bounded labels, the database's figures, the optional token, and
//! nothing secret or personal in the text.

use std::collections::HashMap;

use serde_json::json;

use crate::binary::bridge;
use crate::delivery::delivering_to;
use crate::helpers::{SIGNING_SECRET, TestApp, spawn_app_with};
use crate::sources::hubspot::{creation, post_signed};
use crate::sources::{Bridge, HUBSPOT_SECRET, HUBSPOT_TOKEN, crm_env};

const METRICS_TOKEN: &str = "scrape-token-0123456789";

/// The scrape's samples, `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("text")
}

#[tokio::test]
async fn a_scrape_shows_what_was_received_stored_delivered_and_called_with_its_labels() {
    // Arrange: a canonical contact (sent twice), a HubSpot batch the worker must fetch, a HubSpot
    // request without a signature, and a refused item in the database.
    let (env, hubspot) = crm_env().await;
    hubspot.add_contact(
        "5012",
        json!({"email": "ada@example.com", "firstname": "Ada"}),
    );
    let body = json!({"email": "grace@example.com"}).to_string();
    assert_eq!(
        env.app.post_signed("evt-1", &body).await.status().as_u16(),
        202
    );
    assert_eq!(
        env.app.post_signed("evt-1", &body).await.status().as_u16(),
        200
    );
    let response = post_signed(&env.app, &json!([creation(5012)])).await;
    assert_eq!(response.status().as_u16(), 200);
    let unsigned = env
        .app
        .post_source(
            "hubspot",
            &[("content-type", "application/json".into())],
            "[]",
        )
        .await;
    assert_eq!(unsigned.status().as_u16(), 401);
    sqlx::query(
        "INSERT INTO refused (source, record_id, reason, field, refused_at)
         VALUES ('pipedrive', '77', 'missing_email', 'email', 1)",
    )
    .execute(&env.db)
    .await
    .expect("refused row");

    // Act
    env.catch_up();
    env.drain().await;
    let text = scrape(&env.app).await;

    // Assert
    let s = samples(&text);
    let value = |series: &str| s.get(series).copied();
    for (series, expected) in [
        (
            r#"tallyfy_bridge_webhooks_received_total{source="canonical",status="202"}"#,
            1.0,
        ),
        (
            r#"tallyfy_bridge_webhooks_received_total{source="canonical",status="200"}"#,
            1.0,
        ),
        (
            r#"tallyfy_bridge_webhooks_received_total{source="hubspot",status="200"}"#,
            1.0,
        ),
        (
            r#"tallyfy_bridge_webhooks_received_total{source="hubspot",status="401"}"#,
            1.0,
        ),
        (
            r#"tallyfy_bridge_ingest_duration_seconds_count{source="canonical"}"#,
            2.0,
        ),
        (
            r#"tallyfy_bridge_ingest_duration_seconds_count{source="hubspot"}"#,
            2.0,
        ),
        (r#"tallyfy_bridge_events_total{result="stored"}"#, 2.0),
        (r#"tallyfy_bridge_events_total{result="duplicate"}"#, 1.0),
        // Every event that reached the writer was in one batch or another; the 401 never did.
        ("tallyfy_bridge_writer_batch_size_sum", 3.0),
        (r#"tallyfy_bridge_deliveries_total{outcome="fetched"}"#, 1.0),
        (
            r#"tallyfy_bridge_deliveries_total{outcome="delivered"}"#,
            2.0,
        ),
        (
            r#"tallyfy_bridge_tallyfy_calls_total{operation="create",status="201"}"#,
            2.0,
        ),
        (
            r#"tallyfy_bridge_tallyfy_call_duration_seconds_count{operation="create"}"#,
            2.0,
        ),
        (
            r#"tallyfy_bridge_crm_reads_total{crm="hubspot",status="200"}"#,
            1.0,
        ),
        (
            r#"tallyfy_bridge_crm_read_duration_seconds_count{crm="hubspot"}"#,
            1.0,
        ),
        (r#"tallyfy_bridge_outbox_rows{state="delivered"}"#, 2.0),
        (r#"tallyfy_bridge_outbox_rows{state="queued"}"#, 0.0),
        ("tallyfy_bridge_outbox_oldest_waiting_age_seconds", 0.0),
        ("tallyfy_bridge_delivery_paused", 0.0),
        ("tallyfy_bridge_delivery_rate_limited", 0.0),
        (
            r#"tallyfy_bridge_refused_items{source="pipedrive",reason="missing_email"}"#,
            1.0,
        ),
        ("tallyfy_bridge_refused_items_all", 1.0),
        ("tallyfy_bridge_database_ok", 1.0),
        ("tallyfy_bridge_retention_last_prune_rows", 0.0),
    ] {
        assert_eq!(value(series), Some(expected), "{series} in\n{text}");
    }
    assert_eq!(env.posts(), 2, "one create per email");
    assert!(
        value("tallyfy_bridge_database_size_bytes").is_some_and(|b| b > 0.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    // Nothing secret or personal: no token, no secret, no email, no record id as a label.
    for secret in [
        SIGNING_SECRET,
        HUBSPOT_SECRET,
        HUBSPOT_TOKEN,
        "example.com",
        "5012",
        "\"77\"",
    ] {
        assert!(!text.contains(secret), "{secret:?} in\n{text}");
    }
    let tallyfy_token = &env.app.settings.tallyfy.token;
    let tallyfy_token = secrecy::ExposeSecret::expose_secret(tallyfy_token.as_ref().expect("set"));
    assert!(!text.contains(tallyfy_token), "{text}");
}

#[tokio::test]
async fn with_a_token_a_scrape_needs_its_bearer() {
    let app = spawn_app_with(&[("BRIDGE__METRICS__TOKEN", METRICS_TOKEN.into())]).await;
    let url = format!("{}/metrics", app.address);
    // None, a wrong token, and the right one without its `Bearer` scheme.
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(METRICS_TOKEN),
    ] {
        let mut request = app.client.get(&url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
    }
    let response = app
        .client
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("tallyfy_bridge_database_ok 1"), "{text}");
    assert!(!text.contains(METRICS_TOKEN));
}

#[test]
fn an_empty_metrics_token_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let output = bridge(&dir.path().join("b.sqlite"))
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__METRICS__TOKEN", " ")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`metrics.token`") && stderr.contains("empty"),
        "{stderr}"
    );
}

#[tokio::test]
async fn disabled_metrics_answer_404_and_webhooks_still_work() {
    let app = spawn_app_with(&[("BRIDGE__METRICS__ENABLED", "false".into())]).await;
    let response = app.post_contact(json!({"email": "off@example.com"})).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(app.get("/metrics").await.status().as_u16(), 404);
}

/// Every `tallyfy_bridge_…` name an alert rule reads.
fn alert_metric_names() -> Vec<String> {
    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").expect("alerts.yml");
    let mut names: Vec<String> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("tallyfy_bridge_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_metric_the_alert_rules_use_is_exposed_by_a_running_bridge() {
    // Arrange: the real delivery loop, so the worker's heartbeat exists.
    let config = tallyfy_sandbox::SandboxConfig::default();
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = tallyfy_sandbox::Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let app = spawn_app_with(&delivering_to(&sandbox, org, token)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = scrape(&app).await;
    while !text.contains("tallyfy_bridge_worker_heartbeat_age_seconds")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(&app).await;
    }

    // Assert: a counter with no sample yet is still declared (`# TYPE` without `_total`).
    let names = alert_metric_names();
    assert!(names.len() >= 5, "{names:?}");
    // A bridge without a CRM API to reconcile has no reconcile series: those alerts' metrics
    // are checked against a reconciling bridge in `reconcile::metrics`.
    let names = names
        .into_iter()
        .filter(|name| !name.starts_with("tallyfy_bridge_reconcile_"));
    for name in names {
        let family = name.trim_end_matches("_total");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{name} is used by an alert but not exposed:\n{text}"
        );
    }
}
