//! Retry and cancel: which states each applies to (409 otherwise), bulk changes bounded with
//! `more`, a cancelled row never claimed, a retried row that looks its guest up before any
//! create, a fresh retry budget, and a running worker woken by the retry.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig};

use super::{Seed, admin_app, admin_env, post_json, seed};
use crate::delivery::delivering_to;
use crate::helpers::spawn_app_with;

const T0: i64 = 1_796_119_200_000;

fn seeded(state: &str) -> Seed<'_> {
    Seed {
        source: "hubspot",
        email: "rules@example.com",
        state,
        received_at: T0,
    }
}

#[tokio::test]
async fn retry_applies_to_failed_and_cancelled_rows_and_cancel_to_waiting_and_failed_ones() {
    let app = admin_app().await;
    let db = app.db().await;
    let states = [
        "failed",
        "delivered",
        "queued",
        "retrying",
        "in_flight",
        "cancelled",
        "failed",
    ];
    let seeds: Vec<Seed> = states.iter().map(|s| seeded(s)).collect();
    let ids = seed(&db, &seeds).await;
    sqlx::query("UPDATE outbox SET attempts = 3 WHERE id = ?1")
        .bind(ids[0])
        .execute(&db)
        .await
        .expect("attempts");
    let act = |action: &'static str, id: i64| {
        let app = &app;
        async move { post_json(app, &format!("/deliveries/{id}/{action}"), None).await }
    };

    // Retry: failed and cancelled only.
    let (status, body) = act("retry", ids[0]).await;
    assert_eq!(status, 200, "{body}");
    let row = &body["delivery"];
    assert_eq!(row["state"], "queued");
    assert_eq!(row["attempts"], 3, "attempts keep counting: the fence");
    assert!(row["retried_at"].is_string(), "{row}");
    assert_eq!(row["next_attempt_at"], row["retried_at"]);
    let (budget_base,): (i64,) =
        sqlx::query_as("SELECT attempts_before_retry FROM outbox WHERE id = ?1")
            .bind(ids[0])
            .fetch_one(&db)
            .await
            .expect("row");
    assert_eq!(budget_base, 3);
    for (i, state) in [
        (1, "delivered"),
        (2, "queued"),
        (3, "retrying"),
        (4, "in_flight"),
    ] {
        let (status, body) = act("retry", ids[i]).await;
        assert_eq!(status, 409, "{state}: {body}");
        assert_eq!(body["error"]["code"], "conflict");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(state), "{message}");
    }
    let (status, body) = act("retry", ids[5]).await;
    assert_eq!(
        (status, body["delivery"]["state"].as_str()),
        (200, Some("queued"))
    );

    // Cancel: queued, retrying or failed only.
    for i in [2, 3, 6] {
        let (status, body) = act("cancel", ids[i]).await;
        assert_eq!(status, 200, "{}: {body}", states[i]);
        assert_eq!(body["delivery"]["state"], "cancelled");
    }
    let (status, body) = act("cancel", ids[4]).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("in_flight") && message.contains("try again"),
        "{message}"
    );
    for i in [1, 2] {
        let (status, _) = act("cancel", ids[i]).await;
        assert_eq!(status, 409, "delivered and cancelled rows stay as they are");
    }

    for action in ["retry", "cancel"] {
        for id in ["999999", "abc"] {
            let (status, body) = post_json(&app, &format!("/deliveries/{id}/{action}"), None).await;
            assert_eq!(status, 404, "{action} {id}: {body}");
        }
    }
}

#[tokio::test]
async fn a_cancelled_row_is_never_claimed() {
    let env = admin_env(SandboxConfig::default(), &[]).await;
    let id = env.post(json!({"email": "unwanted@example.com"})).await;

    let (status, _) = post_json(&env.app, &format!("/deliveries/{id}/cancel"), None).await;
    assert_eq!(status, 200);
    env.advance(Duration::from_secs(3600));

    assert_eq!(env.drain().await, 0);
    assert_eq!(env.posts() + env.lookups(), 0);
    assert_eq!(env.row(id).await.state, "cancelled");
}

#[tokio::test]
async fn bulk_changes_are_bounded_and_say_when_more_rows_match() {
    let app = admin_app().await;
    let db = app.db().await;
    let mut seeds: Vec<Seed> = (0..5).map(|_| seeded("failed")).collect();
    seeds.push(Seed {
        source: "pipedrive",
        ..seeded("failed")
    });
    seeds.push(seeded("delivered"));
    seeds.push(Seed {
        received_at: T0 + 60_000,
        ..seeded("queued")
    });
    seeds.push(Seed {
        received_at: T0 + 120_000,
        ..seeded("queued")
    });
    let ids = seed(&db, &seeds).await;

    let filter = json!({"state": "failed", "source": "hubspot", "limit": 2});
    for (moved, more) in [(2, true), (2, true), (1, false), (0, false)] {
        let (status, body) = post_json(&app, "/deliveries/retry", Some(filter.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"moved": moved, "more": more}));
    }
    let state = |id: i64| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM outbox WHERE id = ?1")
                .bind(id)
                .fetch_one(&db)
                .await
                .expect("state")
        }
    };
    for id in &ids[..5] {
        assert_eq!(state(*id).await, "queued");
    }
    assert_eq!(
        state(ids[5]).await,
        "failed",
        "another source is left alone"
    );
    assert_eq!(state(ids[6]).await, "delivered");

    // Cancel by time window: received in [T0 + 1 min, T0 + 2 min) only.
    let window = json!({
        "state": "queued",
        "since": "2026-12-01T10:01:00Z",
        "until": "2026-12-01T10:02:00Z",
    });
    let (status, body) = post_json(&app, "/deliveries/cancel", Some(window)).await;
    assert_eq!((status, body), (200, json!({"moved": 1, "more": false})));
    assert_eq!(state(ids[7]).await, "cancelled");
    assert_eq!(state(ids[8]).await, "queued");

    for (body, field) in [
        (json!({"source": "hubspot"}), "state"),
        (json!({"state": "delivered"}), "state"),
        (json!({"state": "failed", "limit": 10_001}), "limit"),
        (json!({"state": "failed", "emial": "x@example.com"}), "body"),
    ] {
        let (status, answer) = post_json(&app, "/deliveries/retry", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = post_json(&app, "/deliveries/cancel", None).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("body"))
    );
}

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
    assert_eq!(env.row(id).await.state, "failed");
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
    sqlx::query("UPDATE outbox SET received_at = received_at - 7200000 WHERE id = ?1")
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
    use tallyfy_bridge::outbox::Store;

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
    assert!(
        env.store
            .email_attempted_before(email, 0)
            .await
            .expect("read")
    );

    let (status, _) = post_json(&env.app, &format!("/deliveries/{id}/retry"), None).await;
    assert_eq!(status, 200);

    // Queued again, it is outside the attempted-rows index; its attempts still count.
    assert_eq!(env.row(id).await.state, "queued");
    assert!(
        env.store
            .email_attempted_before(email, 0)
            .await
            .expect("read"),
        "a later row of the email claimed first must look the guest up"
    );
    assert!(
        !env.store
            .email_attempted_before(email, id)
            .await
            .expect("read")
    );
}
