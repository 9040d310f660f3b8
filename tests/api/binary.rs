//! The real `tallyfy-bridge` binary: start-up errors, JSON logs without secrets, and a graceful
//! stop on SIGTERM that keeps every accepted event.

use std::process::Command;

use crate::helpers::{SIGNING_SECRET, signed_post};

// Other modules reach the process helpers as `crate::binary::…`.
pub use crate::process::{
    BINARY, Guard, log_lines, sandbox_url, start, wait_for_guests, wait_for_port,
};

/// The binary on the test's database: the SQLite file `db`, or on PostgreSQL the database of
/// `db`'s directory (created here).
pub fn bridge(db: &std::path::Path) -> Command {
    let mut command = crate::process::bridge(db);
    command.envs(crate::helpers::database_env(db));
    command
}

#[test]
fn a_missing_secret_stops_start_up_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let output = bridge(&dir.path().join("b.sqlite")).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ingest.auth.signing_secret"), "{stderr}");
}

#[test]
fn an_empty_secret_stops_start_up_naming_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    for (key, named) in [
        ("BRIDGE__ADMIN__TOKEN", "admin.token"),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            "sources.pipedrive.password",
        ),
        (
            "BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET",
            "sources.hubspot.client_secret",
        ),
    ] {
        let output = bridge(&dir.path().join("b.sqlite"))
            .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
            .env(key, "")
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("`{named}`")), "{stderr}");
    }
}

#[test]
fn migrate_needs_no_secrets_and_creates_the_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("m.sqlite");
    let output = bridge(&db).arg("migrate").output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if !crate::helpers::on_postgres() {
        assert!(db.exists());
    }
    // The schema is there, on either backend (a runtime of its own: this test is synchronous).
    let url = crate::helpers::file_database_url(&db);
    let rows = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&url).await.expect("db");
                let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                    .fetch_one(&pool)
                    .await
                    .expect("the outbox exists");
                pool.close().await;
                rows
            })
    })
    .join()
    .expect("joined");
    assert_eq!(rows, 0);
}

#[test]
fn a_malformed_value_names_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let output = bridge(&dir.path().join("b.sqlite"))
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("BRIDGE__DATABASE__SYNCHRONOUS", "sometimes")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.synchronous"), "{stderr}");
}

/// The served process runs without transparent huge pages (`small_pages_only` in main.rs):
/// with them, mimalloc's arenas made its resident memory creep up in 2 MiB steps.
#[test]
fn the_served_process_does_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("bridge.sqlite"));
    command.env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET);
    let (child, _lines, _logs, _port) = start(command);

    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).expect("status");

    assert!(
        status.lines().any(|line| line == "THP_enabled:\t0"),
        "{status}"
    );
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_trace_logs_hold_no_secrets() {
    // Arrange: the binary, logging everything, down to trace.
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bridge.sqlite");
    let mut command = bridge(&db);
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env("RUST_LOG", "trace");
    let (mut child, lines, mut logs, port) = start(command);

    // Act: one accepted event, then SIGTERM.
    let body = r#"{"email":"term@example.com","first_name":"Terminal"}"#;
    let url = format!("http://127.0.0.1:{port}/webhooks/contacts");
    let request = signed_post(&reqwest::Client::new(), &url, "msg_term", body)
        .build()
        .expect("request");
    let signature = request.headers()["webhook-signature"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let response = reqwest::Client::new().execute(request).await.expect("sent");
    assert_eq!(response.status().as_u16(), 202);
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    // Assert: a clean exit, the event on disk, and no secret in any log line.
    let status = child.0.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    // The child has exited: read its output to the end (the reader stops at EOF).
    logs.extend(lines.iter());
    let all = logs.join("\n");
    assert!(all.contains("Stopped"), "{all}");
    let signature_value = signature.trim_start_matches("v1,");
    for secret in [
        SIGNING_SECRET.trim_start_matches("whsec_"),
        signature_value,
        "Terminal",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into logs:\n{all}");
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&crate::helpers::file_database_url(&db))
        .await
        .expect("db");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
}

#[test]
fn without_sandbox_missing_tallyfy_settings_stop_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let output = bridge(&dir.path().join("b.sqlite"))
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env_remove("BRIDGE__DELIVERY__ENABLED")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tallyfy.org_id"), "{stderr}");
    assert!(stderr.contains("--sandbox"), "{stderr}");
}

#[tokio::test]
async fn serve_with_sandbox_delivers_without_any_tallyfy_credentials() {
    let dir = tempfile::tempdir().expect("dir");
    let mut command = bridge(&dir.path().join("b.sqlite"));
    command
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .env_remove("BRIDGE__DELIVERY__ENABLED")
        .args(["serve", "--sandbox", "--sandbox-addr", "127.0.0.1:0"]);
    let (mut child, lines, _, port) = start(command);
    let sandbox = sandbox_url(&lines, &mut Vec::new());

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhooks/contacts");
    let response = signed_post(&client, &url, "msg_demo", r#"{"email":"demo@example.com"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 202);

    let guests = wait_for_guests(&client, &sandbox, 1).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert!(child.0.wait().expect("exits").success());
    assert_eq!(guests[0]["email"], "demo@example.com", "{guests:?}");
}
