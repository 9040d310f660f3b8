//! Several bridges on one PostgreSQL database (the `api_postgres` run only): each email is
//! created once whichever replica took its webhook or claimed its row, org-wide state is shared,
//! and `/status` lists the replicas.

use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig};

use crate::delivery::{delivering_to, delivery_env_with};
use crate::helpers::{on_postgres, spawn_app_with};

/// Returns from the test on SQLite (one bridge per file).
macro_rules! postgres_only {
    () => {
        if !on_postgres() {
            return;
        }
    };
}

#[tokio::test]
async fn two_bridges_sharing_a_database_create_each_email_once() {
    postgres_only!();
    // Replica A is the delivery environment's app; B is a second bridge on the same database,
    // with its own writer, worker and pool, driven on the same clock.
    let env = delivery_env_with(
        SandboxConfig::default(),
        &[("BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR", "0".into())],
    )
    .await;
    let b = env.app.beside().await;
    let worker_b = b.worker.clone().expect("delivery is enabled");
    // A third of the creates reach Tallyfy and lose their answer: the row is retried, maybe by
    // the other replica, which must find the guest instead of creating it again.
    env.sandbox.set_faults(Faults {
        drop_after_create_rate: 0.3,
        latency_ms: 5,
        ..Faults::default()
    });

    // Each of 20 emails arrives twice, once at each replica.
    for i in 0..40 {
        let app = if i % 2 == 0 { &env.app } else { &b };
        let response = app
            .post_contact(json!({"email": format!("replica-{}@example.com", i % 20)}))
            .await;
        assert_eq!(response.status().as_u16(), 202);
    }
    env.catch_up();

    // Both workers claim and deliver at the same time until every row is delivered.
    let mut rounds = 0;
    loop {
        let (a, other) = tokio::join!(env.worker.run_once(), worker_b.run_once());
        let ran = a.expect("replica A runs").len() + other.expect("replica B runs").len();
        let delivered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'delivered'")
                .fetch_one(&env.db)
                .await
                .expect("count");
        if delivered == 40 {
            break;
        }
        if ran == 0 {
            // Retries wait for their backoff.
            env.advance(Duration::from_secs(600));
        }
        rounds += 1;
        assert!(rounds < 200, "not delivered after {rounds} rounds");
    }

    for i in 0..20 {
        let email = format!("replica-{i}@example.com");
        assert_eq!(env.sandbox.create_count(&email), 1, "{email}");
    }
    assert_eq!(env.sandbox.guests().len(), 20);
    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM guest_ledger")
        .fetch_one(&env.db)
        .await
        .expect("ledger");
    assert_eq!(ledger, 20);
}

#[tokio::test]
async fn a_credentials_pause_seen_by_one_replica_holds_every_replica() {
    postgres_only!();
    let env = delivery_env_with(SandboxConfig::default(), &[]).await;
    let b = env.app.beside().await;
    let worker_b = b.worker.clone().expect("delivery is enabled");
    // Tallyfy starts refusing the token: replica A meets the 401 and pauses delivery.
    env.sandbox.set_token("a-token-the-bridge-does-not-have");
    let response = env
        .app
        .post_contact(json!({"email": "paused@example.com"}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    env.catch_up();
    env.worker.run_once().await.expect("replica A runs");

    // Replica B, which met no 401 itself, reads the same pause from the database: it sends one
    // probe at most, not its five rows at once.
    for i in 0..5 {
        let response = b
            .post_contact(json!({"email": format!("paused-{i}@example.com")}))
            .await;
        assert_eq!(response.status().as_u16(), 202);
    }
    env.catch_up();
    env.advance(Duration::from_secs(3600));
    let outcomes = worker_b.run_once().await.expect("replica B runs");
    assert!(
        outcomes.len() <= 1,
        "a paused replica only probes: {outcomes:?}"
    );
    let status: Value = b.get("/status").await.json().await.expect("json");
    assert_eq!(status["delivery"]["paused"], true, "{status}");
    assert_eq!(env.sandbox.guests().len(), 0);
}

#[tokio::test]
async fn status_lists_the_replicas_that_share_the_database() {
    postgres_only!();
    // Two bridges with their delivery loops running: each writes its heartbeat as its loop
    // starts (a driven worker's run_once does not), so this test waits for them.
    let config = SandboxConfig::default();
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let a = spawn_app_with(&delivering_to(&sandbox, org, token)).await;
    let b = a.beside().await;

    let mut status = Value::Null;
    for _ in 0..100 {
        status = a.get("/status").await.json().await.expect("json");
        if status["database"]["replicas"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let database = &status["database"];
    assert_eq!(database["backend"], "postgres", "{status}");
    let replicas = database["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "{status}");
    let this: Vec<&Value> = replicas.iter().filter(|r| r["this"] == true).collect();
    assert_eq!(
        this.len(),
        1,
        "exactly one is the replica answering: {status}"
    );
    assert_ne!(replicas[0]["replica"], replicas[1]["replica"]);
    // B answers for itself: the other entry is "this" there.
    let seen_by_b: Value = b.get("/status").await.json().await.expect("json");
    let b_this: Vec<&Value> = seen_by_b["database"]["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .filter(|r| r["this"] == true)
        .collect();
    assert_eq!(b_this.len(), 1, "{seen_by_b}");
    assert_ne!(b_this[0]["replica"], this[0]["replica"]);
    // The URL (and its password, were there one) is nowhere in /status.
    assert!(!status.to_string().contains("postgres://"), "{status}");
}
