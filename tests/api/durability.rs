//! "Nothing accepted is lost": 2xx only after commit, 503 when the commit cannot happen,
//! every concurrent request committed, every row still there after a restart.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

use crate::helpers::{TestApp, database_url, error_of, on_postgres, spawn_app, spawn_app_with};

/// Another process's write transaction, held until [`WriteLock::release`].
pub struct WriteLock(AnyConnection);

impl WriteLock {
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("rollback");
    }
}

/// SQLite: `BEGIN IMMEDIATE`, the file's one write lock. PostgreSQL has no such lock: every
/// table of the bridge's locked `IN EXCLUSIVE MODE`, which lets reads through and makes every
/// write (and `FOR UPDATE`) wait, until the bridge's `lock_timeout` (its busy_timeout) fails it.
pub async fn hold_write_lock(app: &TestApp) -> WriteLock {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&database_url(app.dir.path()))
        .await
        .expect("connect");
    if on_postgres() {
        let tables: String = sqlx::query_scalar(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
             WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("tables");
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "LOCK TABLE {tables} IN EXCLUSIVE MODE"
        )))
        .execute(&mut conn)
        .await
        .expect("lock");
    } else {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("lock");
    }
    WriteLock(conn)
}

#[tokio::test]
async fn a_locked_database_gets_503_and_stores_nothing_then_recovers() {
    let app = spawn_app_with(&[("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "100".into())]).await;
    let lock = hold_write_lock(&app).await;

    let response = app
        .post_contact(json!({"email": "locked@example.com"}))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, error) = error_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "unavailable");

    lock.release().await;
    assert_eq!(app.outbox_rows().await, 0);
    let retried = app
        .post_contact(json!({"email": "locked@example.com"}))
        .await;
    assert_eq!(retried.status().as_u16(), 202);
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn two_hundred_concurrent_posts_are_all_committed() {
    let app = spawn_app().await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..200 {
        let body = json!({"email": format!("c{n}@example.com")}).to_string();
        let url = format!("{}/webhooks/contacts", app.address);
        let request =
            crate::helpers::signed_post(&app.client, &url, &format!("msg_concurrent_{n}"), &body);
        requests.spawn(async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body["id"].as_i64())
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = requests.join_next().await {
        let (status, id) = result.expect("task");
        assert_eq!(status, 202);
        ids.push(id.expect("id"));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every request got its own row");
    assert_eq!(app.outbox_rows().await, 200);
}

#[tokio::test]
async fn a_restart_on_the_same_file_keeps_every_accepted_event() {
    let app = spawn_app().await;
    let mut accepted = Vec::new();
    for n in 0..20 {
        let response = app
            .post_contact(json!({"email": format!("r{n}@example.com")}))
            .await;
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.expect("json");
        accepted.push(body["id"].as_i64().expect("id"));
    }

    let app = app.restart().await;

    let db = app.db().await;
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&db)
        .await
        .expect("ids");
    assert_eq!(stored, accepted);
    // And the restarted bridge still deduplicates the events it had before.
    let status: Value = app.get("/status").await.json().await.expect("json");
    assert_eq!(status["outbox"]["counts"]["queued"], 20);
}

#[tokio::test]
async fn retries_of_one_event_across_a_restart_are_still_deduplicated() {
    let app = spawn_app().await;
    let body = r#"{"email":"once@example.com"}"#;
    assert_eq!(
        app.post_signed("msg_once", body).await.status().as_u16(),
        202
    );
    let app = app.restart().await;
    assert_eq!(
        app.post_signed("msg_once", body).await.status().as_u16(),
        200
    );
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn one_event_posted_thirty_times_at_once_is_stored_once() {
    // The copies land in the same group commit: exactly one is new, all get its id.
    let app = spawn_app().await;
    let url = format!("{}/webhooks/contacts", app.address);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let request = crate::helpers::signed_post(
            &app.client,
            &url,
            "msg_storm",
            r#"{"email":"storm@example.com"}"#,
        );
        requests.spawn(async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body["id"].as_i64().expect("id"))
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = requests.join_next().await {
        answers.push(answer.expect("task"));
    }
    assert_eq!(
        answers.iter().filter(|(status, _)| *status == 202).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(status, _)| *status == 200).count(),
        29
    );
    assert!(
        answers.windows(2).all(|pair| pair[0].1 == pair[1].1),
        "{answers:?}"
    );
    assert_eq!(app.outbox_rows().await, 1);
}
