//! A retried row delivered: it looks its guest up before any create (never twice), gets a fresh
//! retry budget, keeps other rows of its email looking up first, and wakes the running worker.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig};

use super::{admin_env, post_json};
use crate::delivery::delivering_to;
use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_retried_row_whose_lost_create_reached_tallyfy_finds_its_guest_instead_of_creating() {
    // Tallyfy creates the guest and the answer is lost; with one attempt allowed the row fails.
    let env = admin_env(
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
    let id = env
        .post(json!({"email": "lost-then-retried@example.com"}))
        .await;
    env.drain().await;
    assert_eq!(env.sandbox.create_count("lost-then-retried@example.com"), 1);

    // The operator fixes the cause and retries.
    env.sandbox.set_faults(Faults::default());
    let (status, body) = post_json(&env.app, &format!("/deliveries/{id}/retry"), None).await;
    assert_eq!(status, 200, "{body}");
    env.catch_up();
    let outcomes = env.worker.run_once().await.expect("run");

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
        "{outcomes:?}"
    );
    assert_eq!(
        env.posts(),
        1,
        "the retry looked the guest up instead of posting"
    );
    assert_eq!(env.sandbox.guests().len(), 1);
    let row = env.row(id).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(row.attempts, 2);
    assert_eq!(
        row.guest_id.as_deref(),
        Some(env.sandbox.guests()[0].id.as_str())
    );
}

#[tokio::test]
async fn a_retried_row_gets_a_fresh_budget_of_attempts_and_age() {
    let env = admin_env(
        SandboxConfig {
            faults: Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
        &[
            ("BRIDGE__DELIVERY__MAX_ATTEMPTS", "2".into()),
            ("BRIDGE__DELIVERY__MAX_AGE_SECS", "3600".into()),
            ("BRIDGE__DELIVERY__RETRY_BASE_MS", "1000".into()),
        ],
    )
    .await;
    let run = || async {
        env.advance(Duration::from_secs(10));
        let outcomes = env.worker.run_once().await.expect("run");
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        outcomes
            .into_iter()
            .next()
            .expect("one")
            .1
            .expect("recorded")
    };
    let gave_up = |outcome: &Outcome, after: i64| {
        matches!(outcome, Outcome::Failed { reason, .. }
            if reason.starts_with(&format!("gave up after {after} attempts")))
    };

    // Out of attempts: 2 of 2.
    let by_attempts = env.post(json!({"email": "attempts@example.com"})).await;
    assert!(matches!(run().await, Outcome::Retry { .. }));
    let outcome = run().await;
    assert!(gave_up(&outcome, 2), "{outcome:?}");
    // Out of age: received two hours ago, failed at its first attempt.
    let by_age = env.post(json!({"email": "age@example.com"})).await;
    sqlx::query("UPDATE outbox SET received_at = received_at - 7200000 WHERE id = $1")
        .bind(by_age)
        .execute(&env.db)
        .await
        .expect("aged");
    let outcome = run().await;
    assert!(gave_up(&outcome, 1), "{outcome:?}");

    for id in [by_attempts, by_age] {
        let (status, body) = post_json(&env.app, &format!("/deliveries/{id}/retry"), None).await;
        assert_eq!(status, 200, "{body}");
        env.catch_up();
        let outcome = run().await;
        assert!(
            matches!(outcome, Outcome::Retry { .. }),
            "{id}: {outcome:?}"
        );
        let outcome = run().await;
        assert!(
            gave_up(&outcome, 2),
            "{id}: a second budget of two: {outcome:?}"
        );
    }
    assert_eq!(
        env.row(by_attempts).await.attempts,
        4,
        "attempts keep counting"
    );
}

#[tokio::test]
async fn a_retry_wakes_the_running_worker() {
    // A 4xx from Tallyfy fails the row for good; the loop polls only every minute.
    let config = SandboxConfig {
        faults: Faults {
            error_rate: 1.0,
            error_status: 400,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let mut settings = delivering_to(&sandbox, org, token);
    settings.push(("BRIDGE__DELIVERY__IDLE_POLL_MS", "60000".into()));
    settings.push(("BRIDGE__ADMIN__TOKEN", super::TOKEN.into()));
    let app = spawn_app_with(&settings).await;
    let response = app
        .post_contact(json!({"email": "woken@example.com"}))
        .await;
    let id = response.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    let state = || async {
        let (_, body) = super::get(&app, &format!("/deliveries/{id}")).await;
        body["delivery"]["state"].as_str().unwrap_or("").to_owned()
    };
    let wait_for = |want: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = state().await;
            if now == want || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(wait_for("failed").await, "failed");

    sandbox.set_faults(Faults::default());
    let (status, _) = post_json(&app, &format!("/deliveries/{id}/retry"), None).await;
    assert_eq!(status, 200);

    assert_eq!(
        wait_for("delivered").await,
        "delivered",
        "delivered well before the next poll"
    );
    assert_eq!(sandbox.create_count("woken@example.com"), 1);
}

#[tokio::test]
async fn a_retried_row_waiting_again_still_makes_other_rows_of_its_email_look_up_first() {
    let env = admin_env(
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
    let email = "waiting-again@example.com";
    let id = env.post(json!({ "email": email })).await;
    env.drain().await;

    let (status, _) = post_json(&env.app, &format!("/deliveries/{id}/retry"), None).await;
    assert_eq!(status, 200);
    // Queued again, it is outside the attempted-rows index; its attempts still count. A later
    // row of the email claimed first (the retried one held back here) must look the guest up.
    assert_eq!(env.row(id).await.state, "queued");
    let later = env.post(json!({ "email": email })).await;
    sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE id = $2")
        .bind(env.clock_now() + 3_600_000)
        .bind(id)
        .execute(&env.db)
        .await
        .expect("hold back");
    let now = env.clock_now();
    let claimed = env
        .store
        .claim_due(env.org(), now, 8, now + 90_000)
        .await
        .expect("claim");
    let seen: Vec<(i64, bool)> = claimed.iter().map(|c| (c.id, c.attempted_before)).collect();
    assert_eq!(seen, vec![(later, true)]);
}
