//! What delivery tells operators and other workers: a refused token pauses delivery before its
//! row is due again (one call, not two), and every retry and final failure reaches the log.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyfy_bridge::domain::outcome::Outcome;
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig, SandboxHandle};

use super::{delivering_to, delivery_env};
use crate::binary::{bridge, start};
use crate::helpers::{SIGNING_SECRET, on_postgres, signed_post, spawn_app_with};

#[tokio::test]
async fn a_refused_token_pauses_delivery_in_the_same_commit_that_gives_the_row_back() {
    let env = delivery_env(SandboxConfig::default()).await;
    // Arrange: note what the gate said at the instant each row was written back as due.
    sqlx::query("CREATE TABLE seen_gate (outbox_id BIGINT, paused_reason TEXT)")
        .execute(&env.db)
        .await
        .expect("table");
    // The same row trigger in each backend's dialect: it runs inside the writer's transaction.
    let triggers: &[&str] =
        if on_postgres() {
            &[
                "CREATE FUNCTION note_gate() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO seen_gate SELECT NEW.id, paused_reason FROM worker_state WHERE id = 1;
                 RETURN NEW;
             END $$",
                "CREATE TRIGGER note_gate AFTER UPDATE OF state ON outbox FOR EACH ROW
             WHEN (NEW.state = 'retrying') EXECUTE FUNCTION note_gate()",
            ]
        } else {
            &["CREATE TRIGGER note_gate AFTER UPDATE OF state ON outbox WHEN NEW.state = 'retrying'
         BEGIN
             INSERT INTO seen_gate SELECT NEW.id, paused_reason FROM worker_state WHERE id = 1;
         END"]
        };
    for trigger in triggers {
        sqlx::query(sqlx::AssertSqlSafe(*trigger))
            .execute(&env.db)
            .await
            .expect("trigger");
    }
    let id = env.post(json!({"email": "refused@example.com"})).await;
    env.sandbox.set_token("rotated-token");

    // Act
    let outcomes = env.worker.run_once().await.expect("run");

    // Assert: the row never was due while delivery looked open.
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
    let seen: Vec<(i64, Option<String>)> = sqlx::query_as("SELECT * FROM seen_gate")
        .fetch_all(&env.db)
        .await
        .expect("seen");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, id);
    assert!(
        seen[0].1.is_some(),
        "the row was due before the pause: {seen:?}"
    );
}

#[tokio::test]
async fn the_running_service_calls_once_on_a_refused_token_until_the_next_probe() {
    let sandbox = sandbox(SandboxConfig::default()).await;
    sandbox.set_token("rotated-token");
    let mut settings = delivering_to(&sandbox, "demo-org".into(), "sandbox-token".into());
    settings.push(("BRIDGE__DELIVERY__PAUSED_PROBE_SECS", "3600".into()));
    let app = spawn_app_with(&settings).await;
    let db = app.db().await;
    let attempts = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM delivery_attempts")
            .fetch_one(&db)
            .await
            .expect("count")
    };

    assert_eq!(
        app.post_contact(json!({"email": "refused@example.com"}))
            .await
            .status()
            .as_u16(),
        202
    );
    for _ in 0..200 {
        if attempts().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(attempts().await, 1, "the first attempt ran");
    // More commits wake the worker; none of them may send the refused row (or any) again.
    for n in 0..5 {
        let contact = json!({"email": format!("later{n}@example.com")});
        assert_eq!(app.post_contact(contact).await.status().as_u16(), 202);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(attempts().await, 1, "one 401, then nothing until the probe");
    let status: Value = app.get("/status").await.json().await.expect("json");
    assert_eq!(status["delivery"]["paused"], true, "{status}");
}

/// The fake Tallyfy on a free loopback port.
async fn sandbox(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox")
}

/// The binary with signature auth and delivery on, sending to `tallyfy_url`.
fn delivering_bridge(db: &Path, tallyfy_url: &str) -> Command {
    let mut command = bridge(db);
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__DELIVERY__ENABLED", "true")
        .env("BRIDGE__TALLYFY__BASE_URL", tallyfy_url)
        .env("BRIDGE__TALLYFY__ORG_ID", "demo-org")
        .env("BRIDGE__TALLYFY__TOKEN", "sandbox-token");
    command
}

/// Every log line that arrives within `window`.
fn lines_during(lines: &Receiver<String>, window: Duration) -> Vec<String> {
    let until = Instant::now() + window;
    let mut seen = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Ok(line) = lines.recv_timeout(left) {
            seen.push(line);
        }
    }
    seen
}

/// The JSON log lines of `level` whose message is `message`.
fn lines_with<'a>(logs: &'a [String], level: &str, message: &str) -> Vec<&'a String> {
    logs.iter()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|event| event["level"] == level && event["message"] == message)
        })
        .collect()
}

// Two threads: the test blocks on the log pipe while the sandbox answers on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_is_a_warning_and_a_final_failure_an_error_without_the_email() {
    // Arrange: a Tallyfy that answers 500 to everything, and a bridge allowed two attempts.
    let faults = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let config = SandboxConfig {
        faults,
        ..SandboxConfig::default()
    };
    let sandbox = sandbox(config).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut command = delivering_bridge(&dir.path().join("bridge.sqlite"), &sandbox.base_url());
    command
        .env("BRIDGE__DELIVERY__MAX_ATTEMPTS", "2")
        .env("BRIDGE__DELIVERY__RETRY_BASE_MS", "10")
        .env("BRIDGE__DELIVERY__RETRY_CAP_MS", "20")
        .env("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "2000");
    let (_child, lines, mut logs, port) = start(command);

    // Act
    let body = json!({"email": "Hidden.Person@example.com"}).to_string();
    let url = format!("http://127.0.0.1:{port}/webhooks/contacts");
    let response = signed_post(&reqwest::Client::new(), &url, "evt-logs-1", &body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 202);
    while lines_with(&logs, "ERROR", "Delivery failed for good").is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the final failure is logged: {logs:#?}"));
        logs.push(line);
    }

    // Assert
    let retries = lines_with(&logs, "WARN", "Delivery attempt failed; will retry");
    assert_eq!(retries.len(), 1, "{logs:#?}");
    let retry: Value = serde_json::from_str(retries[0]).expect("json");
    assert_eq!(retry["outbox_id"], 1, "{retry}");
    assert_eq!(retry["attempt"], 1, "{retry}");
    assert_eq!(retry["status"], 500, "{retry}");
    assert!(retry["reason"].is_string(), "{retry}");
    let failed: Value =
        serde_json::from_str(lines_with(&logs, "ERROR", "Delivery failed for good")[0])
            .expect("json");
    assert_eq!(failed["attempt"], 2, "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gave up after 2 attempts")),
        "{failed}"
    );
    let all = logs.join("\n").to_lowercase();
    assert!(!all.contains("hidden.person"), "an email reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_storage_is_reported_once_and_retried_with_backoff_not_in_a_loop() {
    use sqlx::Connection;
    // Arrange: a worker that would look for due rows every 10 ms.
    let sandbox = sandbox(SandboxConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bridge.sqlite");
    let mut command = delivering_bridge(&db, &sandbox.base_url());
    command
        .env("BRIDGE__DELIVERY__IDLE_POLL_MS", "10")
        .env("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "20");
    let (_child, lines, mut logs, port) = start(command);
    let status_url = format!("http://127.0.0.1:{port}/status");
    for _ in 0..500 {
        let status: Value = reqwest::get(&status_url)
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if status["delivery"]["heartbeat_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: another process holds the write lock for a second (on PostgreSQL: the outbox locked
    // against everyone; the bridge's lock_timeout is its busy_timeout), so every claim fails.
    sqlx::any::install_default_drivers();
    let mut other = sqlx::AnyConnection::connect(&crate::helpers::file_database_url(&db))
        .await
        .expect("connect");
    let lock: &[&str] = if on_postgres() {
        &["BEGIN", "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"]
    } else {
        &["BEGIN EXCLUSIVE"]
    };
    for statement in lock {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&mut other)
            .await
            .expect("lock");
    }
    let window = lines_during(&lines, Duration::from_secs(1));
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("unlock");

    // Assert: one ERROR for the whole trouble (it was ~80 a second), then one line of recovery.
    let loud: Vec<&String> = window
        .iter()
        .filter(|line| line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\""))
        .collect();
    assert_eq!(loud.len(), 1, "{loud:#?}");
    assert!(loud[0].contains("Storage is failing"), "{loud:#?}");
    logs.extend(window);
    while lines_with(&logs, "INFO", "Storage works again: delivery resumes").is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("recovery is logged: {logs:#?}"));
        logs.push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_file_is_reported_once_not_at_every_heartbeat() {
    // The SQLite file itself is deleted.
    crate::sqlite_only!();
    // Arrange: a running worker (heartbeats every 2 s) on a file that is then deleted.
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bridge.sqlite");
    // Nothing listens on port 9: no delivery succeeds, so only storage speaks.
    let mut command = delivering_bridge(&db, "http://127.0.0.1:9");
    command.env("BRIDGE__DELIVERY__IDLE_POLL_MS", "10");
    let (_child, lines, _logs, _port) = start(command);

    // Act
    std::fs::remove_file(&db).expect("rm");
    let window = lines_during(&lines, Duration::from_millis(4500));

    // Assert: the loss and the failing storage, each said once, over two heartbeats.
    let failing = window
        .iter()
        .filter(|line| line.contains("Storage is failing"))
        .count();
    assert_eq!(failing, 1, "{window:#?}");
    let lost = window
        .iter()
        .filter(|line| line.contains("deleted or replaced while the bridge was running: nothing"))
        .count();
    assert_eq!(lost, 1, "{window:#?}");
}
