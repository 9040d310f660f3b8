//! The scheduled reconcile as `serve` runs it: a first run at start-up, the subscription check
//! after it, both in `/status` and `/metrics`, and the next run counted from the stored end of
//! the last, so a restart does not run it early.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_hubspot::FakeHubSpot;
use super::hubspot::hubspot_env;
use super::spawn_reconcile_app;
use crate::helpers::TestApp;
use crate::metrics::{alert_metric_names, scrape};

fn hubspot(fake: &FakeHubSpot) -> Vec<(&'static str, String)> {
    let mut env = hubspot_env(fake);
    // On, as by default (the test settings turn it off).
    env.push((
        "BRIDGE__SOURCES__HUBSPOT__RECONCILE_EVERY_SECS",
        "3600".into(),
    ));
    env
}

async fn reconcile_status(app: &TestApp) -> Value {
    let status: Value = app.get("/status").await.json().await.expect("JSON");
    status["reconcile"][0].clone()
}

/// `/status`'s HubSpot entry once its subscription has been checked (the schedule's first
/// run and check happen at start-up); polled, within 20 s.
async fn first_check(app: &TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entry = reconcile_status(app).await;
        if !entry["subscription"].is_null() || Instant::now() > deadline {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_schedule_runs_at_start_checks_the_webhook_and_shows_both() {
    // Arrange: two contacts HubSpot created a minute ago; the app's webhook subscriptions were
    // never made.
    let fake = FakeHubSpot::start().await;
    let minute_ago = chrono::Utc::now().timestamp_millis() - 60_000;
    fake.add(1, minute_ago, json!({"email": "one@example.com"}));
    fake.add(2, minute_ago + 1, json!({"email": "two@example.com"}));

    // Act
    let app = spawn_reconcile_app(&hubspot(&fake)).await;
    let entry = first_check(&app).await;
    let metrics = scrape(&app).await;

    // Assert
    assert_eq!(entry["source"], "hubspot", "{entry}");
    assert_eq!(entry["every_secs"], 3600);
    assert_eq!(
        (&entry["runs"], &entry["last_result"], &entry["last_queued"]),
        (&json!(1), &json!("ok"), &json!(2)),
        "{entry}"
    );
    assert_eq!(entry["subscription"]["state"], "missing", "{entry}");
    assert!(entry["watermark"].is_string(), "{entry}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE source = 'hubspot'")
        .fetch_one(&app.db().await)
        .await
        .expect("count");
    assert_eq!(rows, 2);
    for line in [
        r#"tallyfy_bridge_reconcile_runs_total{source="hubspot",result="ok"} 1"#,
        r#"tallyfy_bridge_reconcile_runs_total{source="hubspot",result="failed"} 0"#,
        r#"tallyfy_bridge_reconcile_contacts_total{source="hubspot",outcome="queued"} 2"#,
        r#"tallyfy_bridge_reconcile_subscription_ok{source="hubspot"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Every metric an alert reads exists on a reconciling bridge.
    for name in alert_metric_names()
        .iter()
        .filter(|n| n.starts_with("tallyfy_bridge_reconcile_"))
    {
        let family = name.trim_end_matches("_total");
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{name}");
    }
}

#[tokio::test]
async fn after_a_restart_the_next_run_is_due_a_period_after_the_last_one_ended() {
    let fake = FakeHubSpot::start().await;
    let app = spawn_reconcile_app(&hubspot(&fake)).await;
    let before = first_check(&app).await;
    assert_eq!(before["runs"], 1, "{before}");

    let app = app.restart().await;
    let after = reconcile_status(&app).await;

    let at = |v: &Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(v[key].as_str().expect(key))
            .expect("RFC 3339")
            .timestamp_millis()
    };
    assert_eq!(after["runs"], 1, "no run at the restart: {after}");
    assert_eq!(
        at(&after, "next_run_at") - at(&after, "last_run_at"),
        3_600_000,
        "{after}"
    );
}

#[tokio::test]
async fn the_console_overview_shows_each_crms_reconcile_and_its_webhook() {
    let fake = FakeHubSpot::start().await;
    let app = spawn_reconcile_app(&hubspot(&fake)).await;
    first_check(&app).await;

    let console = crate::console::Console::login(&app).await;
    let (status, html) = console.page("/console").await;

    assert_eq!(status, 200);
    let table = html
        .split(r#"<table id="reconcile">"#)
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("a reconcile table");
    assert!(table.contains(r#"data-source="hubspot""#), "{table}");
    assert!(
        table.contains(r#"<span class="bad">missing</span>"#),
        "{table}"
    );
    assert!(table.contains("<td>ok</td>"), "the run's result: {table}");
}
