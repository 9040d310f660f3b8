//! `/status` and the health endpoints, as an operator and an orchestrator read them.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn status_counts_queued_events_and_their_age() {
    let app = spawn_app().await;
    let before: Value = app.get("/status").await.json().await.expect("json");
    assert_eq!(before["outbox"]["counts"]["queued"], 0);
    assert_eq!(before["outbox"]["oldest_waiting_at"], Value::Null);

    for n in 0..3 {
        let response = app
            .post_contact(json!({"email": format!("s{n}@example.com")}))
            .await;
        assert_eq!(response.status().as_u16(), 202);
    }

    let response = app.get("/status").await;
    assert_eq!(response.status().as_u16(), 200);
    let status: Value = response.json().await.expect("json");
    assert_eq!(
        status["outbox"]["counts"],
        json!({"queued": 3, "in_flight": 0, "retrying": 0, "delivered": 0, "failed": 0, "cancelled": 0})
    );
    assert!(status["outbox"]["oldest_waiting_at"].is_string());
    assert!(
        status["outbox"]["oldest_waiting_age_secs"]
            .as_f64()
            .is_some_and(|a| a >= 0.0)
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["database"]["ok"], true);
    assert!(
        status["database"]["size_bytes"]
            .as_i64()
            .is_some_and(|bytes| bytes > 0)
    );
    assert_eq!(status["delivery"]["paused"], false);
    assert_eq!(status["refused"], json!({"total": 0, "by_source": []}));
    assert_eq!(
        status["retention"],
        json!({"last_prune_at": null, "last_prune_rows": null})
    );
    assert!(status["uptime_secs"].is_u64());
}

#[tokio::test]
async fn counts_follow_state_changes_made_by_any_writer() {
    // The counts are kept by triggers; prove they follow updates, not only inserts.
    let app = spawn_app().await;
    for n in 0..2 {
        app.post_contact(json!({"email": format!("t{n}@example.com")}))
            .await;
    }
    let db = app.db().await;
    sqlx::query("UPDATE outbox SET state = 'delivered', guest_id = 'g1' WHERE id = (SELECT min(id) FROM outbox)")
        .execute(&db)
        .await
        .expect("update");

    let status: Value = app.get("/status").await.json().await.expect("json");
    assert_eq!(status["outbox"]["counts"]["queued"], 1);
    assert_eq!(status["outbox"]["counts"]["delivered"], 1);
}

#[tokio::test]
async fn live_and_ready_answer_200_on_a_healthy_bridge() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live").await.status().as_u16(), 200);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status().as_u16(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn ready_is_503_while_the_database_cannot_take_writes() {
    let app =
        crate::helpers::spawn_app_with(&[("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "100".into())])
            .await;
    let lock = crate::durability::hold_write_lock(&app).await;

    let response = app.get("/health/ready").await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(app.get("/health/live").await.status().as_u16(), 200);

    lock.release().await;
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 200);
}
