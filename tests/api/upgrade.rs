//! A database written by the release before the stored event was versioned is upgraded in place
//! by `serve`'s migrations, and every row it held is delivered: none lost, none created twice.

use std::path::Path;

use serde_json::json;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;

use crate::sources::crm_env_with;

const ADMIN_TOKEN: &str = "admin-token-for-upgrade-tests";

/// The last migration of the release that stored untagged payloads.
const PREVIOUS_RELEASE: i64 = 20261201000002;

/// Rows as that release wrote them: a guest, a HubSpot contact known by id only (its "email" a
/// made-up key), a Pipedrive person waiting for its organisation, and a delivered row with its
/// ledger entry and attempt log.
async fn write_previous_release_database(path: &Path) {
    let old = tempfile::tempdir().expect("dir");
    for entry in std::fs::read_dir("migrations").expect("migrations") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        // migrations/postgres/ is the other backend's.
        if !name.ends_with(".sql") {
            continue;
        }
        let version: i64 = name[..14].parse().expect("version");
        if version <= PREVIOUS_RELEASE {
            std::fs::copy(entry.path(), old.path().join(&name)).expect("copy");
        }
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = SqlitePool::connect(&url).await.expect("db");
    let migrator = Migrator::new(old.path()).await.expect("old migrations");
    migrator
        .run(&pool)
        .await
        .expect("previous release's schema");
    let now = chrono::Utc::now().timestamp_millis() - 60_000;
    let rows = [
        (
            1,
            "canonical",
            "ada@example.com",
            json!({"email": "Ada@Example.com", "first_name": "Ada"}),
            "queued",
        ),
        (
            2,
            "hubspot",
            "hubspot:62515:5012",
            json!({"hubspot_contact": {"portal_id": "62515", "contact_id": "5012"}}),
            "queued",
        ),
        (
            3,
            "pipedrive",
            "grace@example.com",
            json!({"pipedrive_org": {"org_id": "42"}, "guest": {"email": "Grace@example.com", "first_name": "Grace"}}),
            "retrying",
        ),
        (
            4,
            "canonical",
            "old@example.com",
            json!({"email": "old@example.com"}),
            "delivered",
        ),
    ];
    for (id, source, email, payload, state) in rows {
        sqlx::query(
            "INSERT INTO outbox (id, source, event_id, email, payload, state, attempts,
                 next_attempt_at, received_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)",
        )
        .bind(id)
        .bind(source)
        .bind(format!("evt-{id}"))
        .bind(email)
        .bind(payload.to_string())
        .bind(state)
        .bind(i64::from(state != "queued"))
        .bind(now)
        .execute(&pool)
        .await
        .expect("row");
    }
    sqlx::query(
        "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
         VALUES ('demo-org', 'old@example.com', 'g-old', 4, 'created', ?1)",
    )
    .bind(now)
    .execute(&pool)
    .await
    .expect("ledger");
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, outcome)
         VALUES (4, 1, ?1, 5, 'delivered'), (3, 1, ?1, 5, 'fetch_failed')",
    )
    .bind(now)
    .execute(&pool)
    .await
    .expect("attempts");
    pool.close().await;
}

#[tokio::test]
async fn a_database_of_the_previous_release_is_upgraded_and_its_rows_delivered() {
    // An old SQLite file: PostgreSQL starts at this release's schema.
    crate::sqlite_only!();
    // Arrange: the old file, then the bridge of this release on it.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bridge.sqlite");
    write_previous_release_database(&path).await;
    let (env, crm) = crm_env_with(&[
        ("BRIDGE__DATABASE__PATH", path.display().to_string()),
        (
            "BRIDGE__DATABASE__URL",
            crate::helpers::file_database_url(&path),
        ),
        ("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN.into()),
    ])
    .await;
    // An operator sees the HubSpot row by its record until its email is read.
    let pending: serde_json::Value = env
        .app
        .client
        .get(format!("{}/deliveries/2", env.app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            &pending["delivery"]["email"],
            &pending["delivery"]["crm_record"]
        ),
        (&json!(null), &json!("hubspot:62515:5012")),
        "{pending}"
    );
    crm.add_contact(
        "5012",
        json!({"email": "Charles@example.com", "firstname": "Charles"}),
    );
    crm.add_org("42", "Navy");

    // Act
    env.catch_up();
    env.drain().await;

    // Assert: the three waiting rows became one guest each; the delivered one was left alone.
    let mut guests = env.sandbox.guests();
    guests.sort_by(|a, b| a.email.cmp(&b.email));
    let emails: Vec<&str> = guests.iter().map(|g| g.email.as_str()).collect();
    assert_eq!(
        emails,
        [
            "ada@example.com",
            "charles@example.com",
            "grace@example.com"
        ]
    );
    assert_eq!(guests[2].company_name.as_deref(), Some("Navy"));
    let rows: Vec<(i64, Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT id, email, crm_record, state FROM outbox ORDER BY id")
            .fetch_all(&env.db)
            .await
            .expect("rows");
    let expect = |email: &str| Some(email.to_owned());
    assert_eq!(
        rows,
        [
            (1, expect("ada@example.com"), None, "delivered".into()),
            (
                2,
                expect("charles@example.com"),
                expect("hubspot:62515:5012"),
                "delivered".into()
            ),
            (3, expect("grace@example.com"), None, "delivered".into()),
            (4, expect("old@example.com"), None, "delivered".into()),
        ]
    );
    assert_eq!(
        env.ledger("old@example.com").await.as_deref(),
        Some("g-old")
    );
    let attempts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_attempts WHERE outbox_id = 4")
            .fetch_one(&env.db)
            .await
            .expect("attempt log");
    assert_eq!(attempts, 1, "the attempt log survives the rebuild");
}
