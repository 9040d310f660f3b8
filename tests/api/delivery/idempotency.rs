//! "Never twice": repeated emails, concurrency, creates whose answer was lost, 422 for an
//! existing guest, and a worker that died holding a lease.

use std::time::Duration;

use serde_json::json;
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{DuplicateMode, Faults, SandboxConfig};

use super::{delivery_env, delivery_env_with};

#[tokio::test]
async fn a_repeated_email_creates_one_guest() {
    let env = delivery_env(SandboxConfig::default()).await;
    let first = env.post(json!({"email": "twice@example.com"})).await;
    let second = env.post(json!({"email": "TWICE@example.com "})).await;

    env.drain().await;

    assert_eq!(env.posts(), 1);
    assert_eq!(env.sandbox.stats().duplicate_create_attempts, 0);
    let (a, b) = (env.row(first).await, env.row(second).await);
    assert_eq!(
        (a.state.as_str(), b.state.as_str()),
        ("delivered", "delivered")
    );
    assert_eq!(a.guest_id, b.guest_id);
}

#[tokio::test]
async fn fifty_events_over_ten_emails_make_exactly_ten_posts() {
    let env = delivery_env(SandboxConfig::default()).await;
    for n in 0..50 {
        env.post(json!({"email": format!("user{}@example.com", n % 10)}))
            .await;
    }

    env.drain().await;

    assert_eq!(env.posts(), 10);
    assert_eq!(env.sandbox.guests().len(), 10);
    assert!(
        env.sandbox
            .guests()
            .iter()
            .all(|g| g.creates == 1 && g.duplicate_attempts == 0)
    );
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'delivered'")
            .fetch_one(&env.db)
            .await
            .expect("count");
    assert_eq!(delivered, 50);
    // Every delivered row carries its email's ledger id.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o JOIN guest_ledger l ON l.email = o.email
         WHERE o.guest_id IS DISTINCT FROM l.guest_id",
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn one_claim_never_takes_two_rows_of_the_same_email() {
    let env = delivery_env(SandboxConfig::default()).await;
    for _ in 0..3 {
        env.post(json!({"email": "same@example.com"})).await;
    }
    let first_round = env.worker.run_once().await.expect("run");
    assert_eq!(first_round.len(), 1, "{first_round:?}");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated() {
    // Tallyfy creates the guest, then the connection drops: the bridge cannot know.
    let env = delivery_env(SandboxConfig {
        faults: Faults {
            drop_after_create_rate: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let id = env.post(json!({"email": "lost@example.com"})).await;

    let first = env.worker.run_once().await.expect("run");
    assert!(matches!(first[0].1, Ok(Outcome::Retry { .. })), "{first:?}");
    assert_eq!(env.sandbox.create_count("lost@example.com"), 1);

    env.sandbox.set_faults(Faults::default());
    env.advance(Duration::from_secs(3600));
    let second = env.worker.run_once().await.expect("run");

    assert!(
        matches!(
            &second[0].1,
            Ok(Outcome::Delivered {
                learned_by: LearnedBy::Found,
                ..
            })
        ),
        "{second:?}"
    );
    assert_eq!(
        env.posts(),
        1,
        "the retry looked the guest up instead of posting"
    );
    let row = env.row(id).await;
    assert_eq!(
        row.guest_id.as_deref(),
        Some(env.sandbox.guests()[0].id.as_str())
    );
}

#[tokio::test]
async fn a_later_event_for_an_email_whose_create_was_uncertain_looks_up_first() {
    let env = delivery_env_with(
        SandboxConfig {
            faults: Faults {
                drop_after_create_rate: 1.0,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
        &[("BRIDGE__DELIVERY__MAX_ATTEMPTS", "1".into())],
    )
    .await;
    let gave_up = env.post(json!({"email": "unsure@example.com"})).await;
    env.drain().await;
    assert_eq!(env.row(gave_up).await.state, "failed");

    env.sandbox.set_faults(Faults::default());
    let later = env.post(json!({"email": "unsure@example.com"})).await;
    env.drain().await;

    assert_eq!(env.posts(), 1);
    assert_eq!(env.row(later).await.state, "delivered");
}

#[tokio::test]
async fn a_422_for_an_existing_guest_completes_with_its_id() {
    let env = delivery_env(SandboxConfig {
        duplicate_mode: DuplicateMode::Reject422,
        ..SandboxConfig::default()
    })
    .await;
    // The guest exists in Tallyfy already, created outside the bridge.
    let created = reqwest::Client::new()
        .post(format!(
            "{}/organizations/demo-org/guests",
            env.sandbox.base_url()
        ))
        .bearer_auth("sandbox-token")
        .header("x-tallyfy-client", "APIClient")
        .header("accept", "application/json")
        .json(&json!({"email": "known@example.com"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status().as_u16(), 201);
    let id = env.post(json!({"email": "known@example.com"})).await;

    let outcomes = env.worker.run_once().await.expect("run");

    assert!(
        matches!(
            &outcomes[0].1,
            Ok(Outcome::Delivered {
                learned_by: LearnedBy::Existing,
                ..
            })
        ),
        "{outcomes:?}"
    );
    let row = env.row(id).await;
    assert_eq!(
        row.guest_id.as_deref(),
        Some(env.sandbox.guests()[0].id.as_str())
    );
    assert_eq!(env.sandbox.create_count("known@example.com"), 1);
}

#[tokio::test]
async fn a_lease_left_by_a_dead_worker_is_claimed_again_after_it_expires() {
    let env = delivery_env(SandboxConfig::default()).await;
    let id = env.post(json!({"email": "orphan@example.com"})).await;
    // A worker claims the row, then dies before doing anything.
    let now = env.clock_now();
    let claimed = env
        .store
        .claim_due(env.org(), now, 1, now + 90_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    assert!(
        env.worker.run_once().await.expect("run").is_empty(),
        "lease still held"
    );
    env.advance(Duration::from_secs(91));
    let outcomes = env.worker.run_once().await.expect("run");

    assert!(
        matches!(outcomes[0].1, Ok(Outcome::Delivered { .. })),
        "{outcomes:?}"
    );
    let row = env.row(id).await;
    assert_eq!(row.attempts, 2);
    assert_eq!(env.lookups(), 1, "looked up first");
    assert_eq!(env.posts(), 1);
}
