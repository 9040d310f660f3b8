//! What each Tallyfy failure does to a row: retry with backoff, 429 hold without using an
//! attempt, pause on refused credentials, fail on permanent refusals or exhausted attempts.

use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{Faults, SandboxConfig};

use super::{delivery_env, delivery_env_with};

fn faulty(faults: Faults) -> SandboxConfig {
    SandboxConfig {
        faults,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn a_500_is_retried_later_and_then_succeeds() {
    let env = delivery_env(faulty(Faults {
        error_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let id = env.post(json!({"email": "flaky@example.com"})).await;

    let first = env.worker.run_once().await.expect("run");
    let Ok(Outcome::Retry { at, status, .. }) = &first[0].1 else {
        panic!("{first:?}")
    };
    assert_eq!(*status, Some(500));
    assert!(*at >= env.clock_now() + 2000, "backoff from retry_base_ms");
    assert_eq!(env.row(id).await.state, "retrying");
    assert!(
        env.worker.run_once().await.expect("run").is_empty(),
        "not due yet"
    );

    env.sandbox.set_faults(Faults::default());
    env.advance(Duration::from_secs(5));
    env.drain().await;

    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("delivered", 2));
    assert_eq!(env.sandbox.create_count("flaky@example.com"), 1);
}

#[tokio::test]
async fn a_row_that_runs_out_of_attempts_fails_with_its_last_error_and_is_kept() {
    let env = delivery_env_with(
        faulty(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }),
        &[("BRIDGE__DELIVERY__MAX_ATTEMPTS", "3".into())],
    )
    .await;
    let id = env.post(json!({"email": "doomed@example.com"})).await;
    for _ in 0..3 {
        env.worker.run_once().await.expect("run");
        env.advance(Duration::from_secs(3600));
    }
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 3));
    assert!(
        row.last_error.as_deref().is_some_and(|e| e.contains("500")),
        "{row:?}"
    );
    let status: Value = env.app.get("/status").await.json().await.expect("json");
    assert_eq!(status["outbox"]["counts"]["failed"], 1);
    assert!(
        status["delivery"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.contains("doomed"))
    );
}

#[tokio::test]
async fn a_422_for_a_guest_that_does_not_exist_fails_with_tallyfys_message() {
    let env = delivery_env(SandboxConfig::default()).await;
    // A row Tallyfy will refuse (its names are over Tallyfy's limit), as an older bridge
    // version might have stored it.
    sqlx::query(
        "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
         VALUES ('canonical', 'long@example.com', $1, 0, 0, 0)",
    )
    .bind(
        json!({"v": 1, "kind": "guest",
               "guest": {"email": "long@example.com", "first_name": "x".repeat(300)}})
        .to_string(),
    )
    .execute(&env.db)
    .await
    .expect("insert");

    let outcomes = env.worker.run_once().await.expect("run");

    let Ok(Outcome::Failed { reason, status, .. }) = &outcomes[0].1 else {
        panic!("{outcomes:?}")
    };
    assert_eq!(*status, Some(422));
    assert!(reason.contains("first_name"), "{reason}");
    assert_eq!(env.lookups(), 1, "looked up first");
}

#[tokio::test]
async fn a_permanent_4xx_fails_at_once() {
    let env = delivery_env(faulty(Faults {
        error_rate: 1.0,
        error_status: 400,
        ..Faults::default()
    }))
    .await;
    let id = env.post(json!({"email": "bad@example.com"})).await;
    let outcomes = env.worker.run_once().await.expect("run");
    assert!(
        matches!(
            outcomes[0].1,
            Ok(Outcome::Failed {
                status: Some(400),
                ..
            })
        ),
        "{outcomes:?}"
    );
    assert_eq!(env.row(id).await.state, "failed");
}

async fn rate_limited_then_delivered(http_date: bool) {
    let env = delivery_env(faulty(Faults {
        retry_after_http_date: http_date,
        ..Faults::default()
    }))
    .await;
    let id = env.post(json!({"email": "slow@example.com"})).await;
    let other = env.post(json!({"email": "other@example.com"})).await;
    env.sandbox.burst_429(1, 30);

    let first = env.worker.run_once().await.expect("run");

    let until = first
        .iter()
        .find_map(|(_, o)| match o {
            Ok(Outcome::RateLimited { until, .. }) => Some(*until),
            _ => None,
        })
        .expect("one attempt was rate limited");
    let waited = until - env.clock_now();
    assert!((28_000..=31_000).contains(&waited), "waited {waited} ms");
    let limited = if env.row(id).await.state == "retrying" {
        id
    } else {
        other
    };
    assert_eq!(env.row(limited).await.attempts, 0, "a 429 uses no attempt");
    assert!(
        env.worker.run_once().await.expect("run").is_empty(),
        "all delivery holds"
    );

    env.advance(Duration::from_secs(31));
    env.drain().await;
    let row = env.row(limited).await;
    assert_eq!((row.state.as_str(), row.attempts), ("delivered", 1));
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_holds_delivery_without_using_attempts() {
    rate_limited_then_delivered(false).await;
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_is_honoured_too() {
    rate_limited_then_delivered(true).await;
}

#[tokio::test]
async fn refused_credentials_pause_delivery_until_the_token_works_again() {
    let env = delivery_env(SandboxConfig::default()).await;
    let id = env.post(json!({"email": "paused@example.com"})).await;
    env.sandbox.set_token("rotated-token");

    let outcomes = env.worker.run_once().await.expect("run");

    assert!(
        matches!(
            outcomes[0].1,
            Ok(Outcome::Paused {
                status: Some(401),
                ..
            })
        ),
        "{outcomes:?}"
    );
    let status: Value = env.app.get("/status").await.json().await.expect("json");
    assert_eq!(status["delivery"]["paused"], true);
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));
    // Still refused: stays paused, still no attempt used, nothing failed.
    env.worker.run_once().await.expect("run");
    assert_eq!(env.row(id).await.attempts, 0);

    env.sandbox.set_token("sandbox-token");
    let resumed = env.worker.run_once().await.expect("run");

    assert!(
        matches!(resumed[0].1, Ok(Outcome::Delivered { .. })),
        "{resumed:?}"
    );
    let status: Value = env.app.get("/status").await.json().await.expect("json");
    assert_eq!(status["delivery"]["paused"], false);
}

#[tokio::test]
async fn a_ledger_hit_while_paused_does_not_lift_the_pause() {
    let env = delivery_env(SandboxConfig::default()).await;
    env.post(json!({"email": "known@example.com"})).await;
    env.drain().await;
    env.sandbox.set_token("rotated-token");
    env.post(json!({"email": "new@example.com"})).await;
    let refused = env.worker.run_once().await.expect("run");
    assert!(
        matches!(refused[0].1, Ok(Outcome::Paused { .. })),
        "{refused:?}"
    );

    // The probe happens to be a row whose guest is already known: no call, so no proof.
    sqlx::query("UPDATE outbox SET next_attempt_at = next_attempt_at + 3600000 WHERE email = 'new@example.com'")
        .execute(&env.db)
        .await
        .expect("postpone");
    env.post(json!({"email": "known@example.com"})).await;
    let probe = env.worker.run_once().await.expect("run");

    assert!(
        matches!(
            &probe[0].1,
            Ok(Outcome::Delivered {
                learned_by: LearnedBy::Ledger,
                ..
            })
        ),
        "{probe:?}"
    );
    let status: Value = env.app.get("/status").await.json().await.expect("json");
    assert_eq!(status["delivery"]["paused"], true);
}
