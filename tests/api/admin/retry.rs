//! Retry and cancel: which states each applies to (409 otherwise), bulk changes bounded with
//! `more`, and a cancelled row never claimed.

use std::time::Duration;

use serde_json::json;
use tallyfy_sandbox::SandboxConfig;

use super::{Seed, admin_app, admin_env, post_json, seed};

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
    sqlx::query("UPDATE outbox SET attempts = 3 WHERE id = $1")
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
        sqlx::query_as("SELECT attempts_before_retry FROM outbox WHERE id = $1")
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
            sqlx::query_scalar::<_, String>("SELECT state FROM outbox WHERE id = $1")
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
