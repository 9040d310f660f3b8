//! The database is the one the bridge opened, and "ready" means a webhook would be stored now:
//! a deleted or replaced file stops every acknowledgement, a start never silently creates an
//! empty database where one existed, and readiness commits a write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use tallyfy_bridge::Application;

use crate::binary::{BINARY, Guard, bridge};
use crate::durability::hold_write_lock;
use crate::helpers::{error_of, spawn_app, spawn_app_with, test_settings};

fn marker(db: &Path) -> std::path::PathBuf {
    let name = db.file_name().expect("name").to_string_lossy();
    db.with_file_name(format!(".{name}.id"))
}

fn remove_database(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[tokio::test]
async fn a_deleted_database_file_stops_acknowledgements_and_readiness() {
    // The SQLite file itself is deleted.
    crate::sqlite_only!();
    let app = spawn_app().await;
    let first = app.post_contact(json!({"email": "kept@example.com"})).await;
    assert_eq!(first.status().as_u16(), 202);

    std::fs::remove_file(app.db_path()).expect("rm");

    let (status, body) =
        error_of(app.post_contact(json!({"email": "lost@example.com"})).await).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 503);
    let response = app.get("/status").await;
    assert_eq!(response.status().as_u16(), 503);
    let status: Value = response.json().await.expect("json");
    assert_eq!(status["database"]["ok"], false, "{status}");
    assert!(
        status["database"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("deleted or replaced")),
        "{status}"
    );
}

#[tokio::test]
async fn a_database_file_replaced_under_the_bridge_is_noticed_too() {
    // The SQLite file itself is replaced.
    crate::sqlite_only!();
    let app = spawn_app().await;
    let other = tempfile::tempdir().expect("dir");
    let impostor = other.path().join("other.sqlite");
    std::fs::write(&impostor, b"").expect("file");
    std::fs::rename(&impostor, app.db_path()).expect("replace");

    let response = app
        .post_contact(json!({"email": "swapped@example.com"}))
        .await;

    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 503);
}

#[tokio::test]
async fn a_start_after_the_database_was_deleted_is_refused_until_the_operator_says_so() {
    // The SQLite file and its marker file.
    crate::sqlite_only!();
    let mut app = spawn_app().await;
    app.shutdown().await;
    let db = app.db_path();
    remove_database(&db);

    let refused = Application::build(app.settings.clone())
        .await
        .err()
        .expect("refused");
    let message = format!("{refused:#}");
    assert!(message.contains("is missing"), "{message}");
    assert!(
        message.contains(&marker(&db).display().to_string()),
        "{message}"
    );
    assert!(!db.exists(), "no empty database was created");

    // Deliberately starting over: delete the marker.
    std::fs::remove_file(marker(&db)).expect("rm marker");
    Application::build(app.settings.clone())
        .await
        .expect("a deliberate new database");
    assert!(db.exists());
}

#[tokio::test]
async fn a_database_swapped_for_another_one_is_refused_at_start() {
    // One SQLite file copied over another.
    crate::sqlite_only!();
    let mut ours = spawn_app().await;
    ours.shutdown().await;
    let mut theirs = spawn_app().await;
    theirs.shutdown().await;
    remove_database(&ours.db_path());
    std::fs::copy(theirs.db_path(), ours.db_path()).expect("swap");

    let refused = Application::build(ours.settings.clone())
        .await
        .err()
        .expect("refused");

    let message = format!("{refused:#}");
    assert!(message.contains("replaced"), "{message}");
}

#[tokio::test]
async fn readiness_is_false_while_a_write_cannot_commit() {
    let app = spawn_app_with(&[("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "50".into())]).await;
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 200);

    let lock = hold_write_lock(&app).await;
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 503);
    lock.release().await;

    assert_eq!(app.get("/health/ready").await.status().as_u16(), 200);
}

#[test]
fn a_database_this_user_cannot_write_stops_start_up() {
    // File permissions of the SQLite file.
    crate::sqlite_only!();
    // Arrange: a migrated database, then read-only for the user the bridge runs as.
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bridge.sqlite");
    let migrated = bridge(&db).arg("migrate").output().expect("migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    let binary = dir.path().join("tallyfy-bridge");
    std::fs::copy(BINARY, &binary).expect("copy binary");
    let mut command = bridge(&db);
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if as_root {
        // Root writes any file: run the bridge as `nobody`, owner of the directory, with the
        // database file itself read-only (as after a careless `chmod 444`).
        let chown = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .env_clear()
            .env("BRIDGE__HTTP__PORT", "0")
            .env("BRIDGE__DATABASE__PATH", &db)
            .env("BRIDGE__DELIVERY__ENABLED", "false");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("dir");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).expect("chmod");

    // Act
    let mut child = command
        .env("BRIDGE__INGEST__AUTH__MODE", "none")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(Guard)
        .expect("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge started on a database it cannot write"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };

    // Assert: it refuses to start rather than answer ready and then 503 every webhook.
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not ready"), "{stderr}");
}

#[tokio::test]
async fn test_settings_have_no_marker_until_the_first_start() {
    // The marker file next to the SQLite file.
    crate::sqlite_only!();
    let dir = tempfile::tempdir().expect("dir");
    let settings = test_settings(dir.path());
    assert!(!marker(&settings.database.path).exists());
    Application::build(settings.clone())
        .await
        .expect("first start");
    assert!(marker(&settings.database.path).exists());
}
