//! Retention over the real application: old end-state rows go with their attempt logs, waiting
//! and recent rows stay, and what a pruned row knew still stops a second create (the ledger for
//! a delivered one, `attempted_emails` for one that failed after an unseen create).

use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_bridge::delivery::policy::Clock;
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{DuplicateMode, Faults, SandboxConfig};

use crate::delivery::{DeliveryEnv, delivery_env, delivery_env_with};

const DAY: Duration = Duration::from_secs(86_400);

impl DeliveryEnv {
    async fn prune(&self) -> tallyfy_bridge::outbox::Pruned {
        self.app.retention.run_once().await.expect("prune")
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    async fn exists(&self, id: i64) -> bool {
        self.count(&format!("SELECT count(*) FROM outbox WHERE id = {id}"))
            .await
            == 1
    }

    async fn attempt_logs(&self, id: i64) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM delivery_attempts WHERE outbox_id = {id}"
        ))
        .await
    }

    fn create_count(&self, email: &str) -> u32 {
        self.sandbox.create_count(email)
    }

    async fn status(&self) -> Value {
        self.app.get("/status").await.json().await.expect("json")
    }

    /// Posts `contact` as event `event_id` of the canonical source; the status code and body.
    async fn post_event(&self, event_id: &str, contact: Value) -> (u16, Value) {
        let response = self.app.post_signed(event_id, &contact.to_string()).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("json");
        self.catch_up();
        (status, body)
    }
}

/// A failure Tallyfy answers for every request while set: a permanent refusal.
fn refusing() -> Faults {
    Faults {
        error_rate: 1.0,
        error_status: 400,
        ..Faults::default()
    }
}

#[tokio::test]
async fn rows_past_their_age_go_with_their_attempt_logs_and_the_rest_stays() {
    // Arrange: one delivered and one failed row, a month and a day old.
    let env = delivery_env_with(
        SandboxConfig::default(),
        &[("BRIDGE__DELIVERY__MAX_ATTEMPTS", "1".into())],
    )
    .await;
    let delivered = env.post(json!({"email": "old@example.com"})).await;
    env.drain().await;
    env.sandbox.set_faults(refusing());
    let failed = env.post(json!({"email": "refused@example.com"})).await;
    env.drain().await;
    env.sandbox.set_faults(Faults::default());
    assert_eq!(env.row(failed).await.state, "failed");
    env.advance(31 * DAY);
    // A row delivered now, and one waiting (stamped by ingest a month "ago" by this clock).
    let recent = env.post(json!({"email": "recent@example.com"})).await;
    env.advance(Duration::from_secs(1));
    env.drain().await;
    let waiting = env.post(json!({"email": "waiting@example.com"})).await;
    let guest = env.ledger("old@example.com").await.expect("ledger entry");

    // Act: delivered rows are kept 30 days, failed ones 90.
    let pruned = env.prune().await;

    // Assert
    assert_eq!((pruned.outbox, pruned.attempts), (1, 1), "{pruned:?}");
    assert!(!env.exists(delivered).await);
    assert_eq!(env.attempt_logs(delivered).await, 0);
    for kept in [failed, recent, waiting] {
        assert!(env.exists(kept).await, "row {kept} kept");
    }
    assert_eq!(env.attempt_logs(failed).await, 1);
    assert_eq!(env.row(waiting).await.state, "queued");
    assert_eq!(env.ledger("old@example.com").await, Some(guest));

    // Two more months: the failed row and the one delivered a month ago go too; the waiting
    // row stays however old, and so does every ledger entry.
    env.advance(60 * DAY);
    let pruned = env.prune().await;
    assert_eq!((pruned.outbox, pruned.attempts), (2, 2), "{pruned:?}");
    assert!(!env.exists(failed).await && !env.exists(recent).await);
    assert!(env.exists(waiting).await);
    assert_eq!(env.count("SELECT count(*) FROM guest_ledger").await, 2);
    let counts = &env.status().await["outbox"]["counts"];
    assert_eq!(
        (&counts["delivered"], &counts["failed"], &counts["queued"]),
        (&json!(0), &json!(0), &json!(1)),
        "{counts}"
    );
}

#[tokio::test]
async fn an_age_of_zero_keeps_rows_forever() {
    let env = delivery_env_with(
        SandboxConfig::default(),
        &[("BRIDGE__RETENTION__DELIVERED_SECS", "0".into())],
    )
    .await;
    let id = env.post(json!({"email": "forever@example.com"})).await;
    env.drain().await;
    env.advance(3650 * DAY);

    let pruned = env.prune().await;

    assert_eq!(pruned.rows(), 0, "{pruned:?}");
    assert!(env.exists(id).await);
    assert_eq!(env.attempt_logs(id).await, 1);
}

#[tokio::test]
async fn status_shows_the_last_prune_and_the_database_size() {
    let env = delivery_env(SandboxConfig::default()).await;
    let before = env.status().await;
    assert_eq!(before["retention"]["last_prune_at"], Value::Null);
    for n in 0..3 {
        env.post(json!({"email": format!("s{n}@example.com")}))
            .await;
    }
    env.drain().await;
    env.advance(31 * DAY);
    // A young row, delivered now: the newest row is also the one SQLite keeps whatever its age
    // (its ids are max + 1), so both backends delete the same three.
    env.post(json!({"email": "young@example.com"})).await;
    env.drain().await;

    env.prune().await;

    let status = env.status().await;
    let expected = chrono::DateTime::from_timestamp_millis(env.clock.now_ms()).expect("time");
    let shown = status["retention"]["last_prune_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("an RFC 3339 time");
    assert_eq!(shown, expected, "{status}");
    assert_eq!(status["retention"]["last_prune_rows"], 3, "{status}");
    assert!(
        status["database"]["size_bytes"]
            .as_i64()
            .is_some_and(|b| b > 0),
        "{status}"
    );
}

/// Never twice (a): the CRM sends the same event again after its delivered row was pruned. The
/// dedup key went with the row, so the event is stored again; the ledger completes it.
#[tokio::test]
async fn a_crm_retry_of_a_pruned_delivered_event_is_completed_from_the_ledger() {
    let env = delivery_env(SandboxConfig::default()).await;
    let contact = json!({"email": "again@example.com"});
    let (status, first) = env.post_event("evt-again", contact.clone()).await;
    assert_eq!(status, 202);
    env.drain().await;
    let (status, _) = env.post_event("evt-again", contact.clone()).await;
    assert_eq!(status, 200, "a retry is a duplicate while the row is kept");
    env.advance(31 * DAY);
    // A young row, delivered now (SQLite keeps the newest row whatever its age, since it gives
    // ids as max + 1; PostgreSQL's sequences never reuse one): the old row alone is pruned.
    let newer = env.post(json!({"email": "newer@example.com"})).await;
    env.drain().await;
    assert_eq!(env.prune().await.outbox, 1);

    let (status, second) = env.post_event("evt-again", contact).await;
    let outcomes = env.worker.run_once().await.expect("run_once");

    assert_eq!(status, 202, "stored again: {second}");
    let id = second["id"].as_i64().expect("id");
    assert!(
        id > newer && newer > first["id"].as_i64().expect("id"),
        "ids are not reused"
    );
    assert!(
        matches!(
            &outcomes[..],
            [(
                _,
                Ok(Outcome::Delivered {
                    learned_by: LearnedBy::Ledger,
                    ..
                })
            )]
        ),
        "{outcomes:?}"
    );
    assert_eq!(env.create_count("again@example.com"), 1);
    assert_eq!(
        (env.posts(), env.lookups()),
        (2, 0),
        "one create per email, no look-up"
    );
    assert_eq!(
        env.row(id).await.guest_id,
        env.ledger("again@example.com").await
    );
}

/// Never twice (b): an attempt created the guest and lost the answer, the row failed and was
/// pruned. A new event for the email must look the guest up (the email is in
/// `attempted_emails`) instead of posting again, whatever Tallyfy would do with a second POST.
#[tokio::test]
async fn a_guest_created_by_a_pruned_failed_row_is_found_not_created_again() {
    for mode in [DuplicateMode::Link, DuplicateMode::Reject422] {
        // Arrange
        let env = delivery_env_with(
            SandboxConfig {
                duplicate_mode: mode,
                faults: Faults {
                    drop_after_create_rate: 1.0,
                    ..Faults::default()
                },
                ..SandboxConfig::default()
            },
            &[("BRIDGE__DELIVERY__MAX_ATTEMPTS", "1".into())],
        )
        .await;
        let lost = env.post(json!({"email": "unseen@example.com"})).await;
        env.drain().await;
        assert_eq!(env.row(lost).await.state, "failed");
        assert_eq!(env.sandbox.create_count("unseen@example.com"), 1);
        assert_eq!(env.ledger("unseen@example.com").await, None);
        env.sandbox.set_faults(Faults::default());
        env.advance(91 * DAY);
        // A young row, so the old one is not SQLite's newest (kept whatever its age).
        env.post(json!({"email": "newer@example.com"})).await;
        env.drain().await;
        let pruned = env.prune().await;
        assert_eq!((pruned.outbox, pruned.attempted_emails), (1, 1), "{mode:?}");
        assert!(!env.exists(lost).await);

        // Act
        let later = env.post(json!({"email": "unseen@example.com"})).await;
        let outcomes = env.worker.run_once().await.expect("run_once");

        // Assert
        assert!(
            matches!(
                &outcomes[..],
                [(
                    _,
                    Ok(Outcome::Delivered {
                        learned_by: LearnedBy::Found,
                        ..
                    })
                )]
            ),
            "{mode:?}: {outcomes:?}"
        );
        assert_eq!(
            env.posts(),
            2,
            "{mode:?}: one per email, none by the later row"
        );
        assert_eq!(env.sandbox.stats().duplicate_create_attempts, 0, "{mode:?}");
        assert_eq!(env.create_count("unseen@example.com"), 1, "{mode:?}");
        assert_eq!(
            env.row(later).await.guest_id,
            env.ledger("unseen@example.com").await,
            "{mode:?}"
        );
    }
}

/// The schedule itself, on the real clock: a prune runs one `every_secs` after start.
#[tokio::test]
async fn the_bridge_prunes_on_its_own_every_period() {
    let app =
        crate::helpers::spawn_app_with(&[("BRIDGE__RETENTION__EVERY_SECS", "1".into())]).await;
    let started = std::time::Instant::now();
    let status: Value = app.get("/status").await.json().await.expect("json");
    assert_eq!(
        status["retention"]["last_prune_at"],
        Value::Null,
        "not at start"
    );

    let mut status = status;
    while status["retention"]["last_prune_at"].is_null()
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app.get("/status").await.json().await.expect("json");
    }

    assert!(status["retention"]["last_prune_at"].is_string(), "{status}");
    assert_eq!(status["retention"]["last_prune_rows"], 0);
}
