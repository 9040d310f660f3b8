//! The delivery worker against the sandbox over loopback: the app's own worker driven with
//! `run_once()` on a manual clock (and its real loop in `running.rs`): each email becomes exactly
//! one guest, and the id comes back to the outbox and ledger.

pub mod clock;
mod failures;
mod idempotency;
mod pacing;
mod running;
mod signals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::AnyPool;
use tallyfy_bridge::configuration::{Backend, DatabaseSettings};
use tallyfy_bridge::delivery::Worker;
use tallyfy_bridge::outbox::Store;
use tallyfy_bridge::outbox::postgres::PgStore;
use tallyfy_bridge::outbox::sqlite::SqliteStore;
use tallyfy_sandbox::{IdStyle, Sandbox, SandboxConfig, SandboxHandle};

use crate::helpers::{Overrides, TestApp, spawn_app_driven};
use clock::ManualClock;

pub struct DeliveryEnv {
    pub app: TestApp,
    pub sandbox: SandboxHandle,
    /// The app's own worker (its loop not started), driven by the test.
    pub worker: Arc<Worker>,
    pub clock: ManualClock,
    pub db: AnyPool,
    pub store: Arc<dyn Store>,
}

pub async fn delivery_env(config: SandboxConfig) -> DeliveryEnv {
    delivery_env_with(config, &[]).await
}

/// The sandbox, and the app delivering to it with a clock the test moves and its worker driven
/// by the test; `overrides` go on top of the delivery settings.
pub async fn delivery_env_with(config: SandboxConfig, overrides: Overrides<'_>) -> DeliveryEnv {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = Sandbox::start(config, addr).await.expect("sandbox starts");
    let mut settings = delivering_to(&sandbox, org, token);
    settings.push(("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "2000".into()));
    settings.push(("BRIDGE__DELIVERY__CONCURRENCY", "8".into()));
    settings.extend(overrides.iter().cloned());
    let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
    let app = spawn_app_driven(&settings, Arc::new(clock.clone())).await;
    let worker = app.worker.clone().expect("delivery is enabled");
    let db = app.db().await;
    // A second view of the same database, for tests that act as another (dying) worker.
    let store = open_store(&app.settings.database).await;
    DeliveryEnv {
        app,
        sandbox,
        worker,
        clock,
        db,
        store,
    }
}

/// The app's database as a second [`Store`] of its backend, not migrated (the app did it).
pub async fn open_store(settings: &DatabaseSettings) -> Arc<dyn Store> {
    match settings.backend().expect("database settings") {
        Backend::Sqlite(path) => Arc::new(
            SqliteStore::open(&settings.with_sqlite_path(&path), false)
                .await
                .expect("store"),
        ),
        Backend::Postgres(url) => {
            Arc::new(PgStore::open(&url, settings, false).await.expect("store"))
        }
    }
}

/// Settings that turn delivery on, to `sandbox` with its credentials.
pub fn delivering_to(
    sandbox: &SandboxHandle,
    org_id: String,
    token: String,
) -> Vec<(&'static str, String)> {
    vec![
        ("BRIDGE__DELIVERY__ENABLED", "true".into()),
        ("BRIDGE__TALLYFY__BASE_URL", sandbox.base_url()),
        ("BRIDGE__TALLYFY__ORG_ID", org_id),
        ("BRIDGE__TALLYFY__TOKEN", token),
    ]
}

impl DeliveryEnv {
    /// Posts a contact and returns its outbox id.
    pub async fn post(&self, contact: Value) -> i64 {
        let response = self.app.post_contact(contact).await;
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.expect("json");
        self.catch_up();
        body["id"].as_i64().expect("id")
    }

    /// Ingest stamps rows with the real clock; the worker's clock must not be behind it.
    pub fn catch_up(&self) {
        self.clock.catch_up(chrono::Utc::now().timestamp_millis());
    }

    /// Runs the worker until nothing is due now; returns how many attempts ran.
    pub async fn drain(&self) -> usize {
        let mut total = 0;
        loop {
            let outcomes = self.worker.run_once().await.expect("run_once");
            if outcomes.is_empty() {
                return total;
            }
            total += outcomes.len();
        }
    }

    pub async fn row(&self, id: i64) -> Row {
        sqlx::query_as("SELECT state, attempts, guest_id, last_error FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await
            .expect("row")
    }

    pub async fn ledger(&self, email: &str) -> Option<String> {
        sqlx::query_scalar("SELECT guest_id FROM guest_ledger WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.db)
            .await
            .expect("ledger")
    }

    /// POSTs the sandbox received (creates plus refused/duplicate attempts).
    pub fn posts(&self) -> u64 {
        self.requests("create_guest")
    }

    /// Look-ups by email the sandbox received.
    pub fn lookups(&self) -> u64 {
        self.requests("find_guest")
    }

    fn requests(&self, route: &str) -> u64 {
        self.sandbox
            .stats()
            .requests
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    pub state: String,
    pub attempts: i64,
    pub guest_id: Option<String>,
    pub last_error: Option<String>,
}

#[tokio::test]
async fn a_contact_becomes_a_guest_with_every_field_and_the_id_comes_back() {
    // Arrange
    let env = delivery_env(SandboxConfig::default()).await;
    let id = env
        .post(json!({
            "email": " Ada@Example.com ", "first_name": "Ada", "last_name": "Lovelace",
            "company_name": "Engines Ltd", "phone_1": "+44 1", "timezone": "Europe/London",
        }))
        .await;

    // Act
    let outcomes = env.worker.run_once().await.expect("run_once");

    // Assert: one POST, with the fields (the sandbox refuses requests lacking Tallyfy's headers).
    assert_eq!(outcomes.len(), 1);
    assert_eq!(env.posts(), 1);
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    let guest = &guests[0];
    assert_eq!(guest.email, "ada@example.com");
    assert_eq!(guest.first_name.as_deref(), Some("Ada"));
    assert_eq!(guest.last_name.as_deref(), Some("Lovelace"));
    let row = env.row(id).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(row.guest_id.as_deref(), Some(guest.id.as_str()));
    assert_eq!(
        env.ledger("ada@example.com").await.as_deref(),
        Some(guest.id.as_str())
    );
    assert!(guest.id.parse::<u64>().is_ok(), "numeric id {}", guest.id);
}

#[tokio::test]
async fn text_ids_are_written_back_as_they_are() {
    let env = delivery_env(SandboxConfig {
        id_style: IdStyle::Text,
        ..Default::default()
    })
    .await;
    let id = env.post(json!({"email": "text@example.com"})).await;
    env.drain().await;
    let row = env.row(id).await;
    let expected = env.sandbox.guests()[0].id.clone();
    assert!(expected.parse::<u64>().is_err(), "text id {expected}");
    assert_eq!(row.guest_id, Some(expected));
}

#[tokio::test]
async fn every_attempt_is_logged() {
    let env = delivery_env(SandboxConfig::default()).await;
    let id = env.post(json!({"email": "log@example.com"})).await;
    env.drain().await;
    let (attempt, outcome, status): (i64, String, Option<i64>) = sqlx::query_as(
        "SELECT attempt, outcome, http_status FROM delivery_attempts WHERE outbox_id = $1",
    )
    .bind(id)
    .fetch_one(&env.db)
    .await
    .expect("one attempt logged");
    assert_eq!((attempt, outcome.as_str(), status), (1, "delivered", None));
}

impl DeliveryEnv {
    /// The org the worker delivers to: its ledger's key.
    pub fn org(&self) -> &str {
        self.app.settings.tallyfy.org_id.as_deref().expect("org id")
    }

    pub fn clock_now(&self) -> i64 {
        use tallyfy_bridge::delivery::policy::Clock;
        self.clock.now_ms()
    }
}

#[tokio::test]
async fn operators_look_up_a_delivery_and_a_guest_with_the_admin_token() {
    let env = delivery_env(SandboxConfig::default()).await;
    // A second app on the same database, with the admin endpoints open.
    let mut overrides = env.app.same_database();
    overrides.extend([
        ("BRIDGE__ADMIN__TOKEN", "admin-secret-for-tests".into()),
        ("BRIDGE__TALLYFY__ORG_ID", "demo-org".into()),
    ]);
    let app = crate::helpers::spawn_app_with(&overrides).await;
    let id = env.post(json!({"email": "Ops@Example.com"})).await;
    env.drain().await;
    let get = |path: String, token: &'static str| {
        app.client
            .get(format!("{}{path}", app.address))
            .bearer_auth(token)
            .send()
    };

    let delivery: Value = get(format!("/deliveries/{id}"), "admin-secret-for-tests")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let guest_id = env.sandbox.guests()[0].id.clone();
    assert_eq!(delivery["delivery"]["state"], "delivered");
    assert_eq!(delivery["delivery"]["guest_id"], guest_id.as_str());
    assert_eq!(delivery["attempts"][0]["outcome"], "delivered");
    // Times read like /status's: RFC 3339 in UTC.
    for time in [
        &delivery["delivery"]["received_at"],
        &delivery["attempts"][0]["started_at"],
    ] {
        assert!(
            time.as_str()
                .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
            "{time}"
        );
    }

    let guest = get("/guests/ops%40example.com".into(), "admin-secret-for-tests")
        .await
        .expect("sent");
    assert_eq!(guest.status().as_u16(), 200);
    let guest: Value = guest.json().await.expect("json");
    assert_eq!(guest["guest_id"], guest_id.as_str());
    assert_eq!(guest["learned_by"], "created");

    let refused = get(format!("/deliveries/{id}"), "wrong")
        .await
        .expect("sent");
    assert_eq!(refused.status().as_u16(), 401);
    let missing = get(
        "/guests/nobody%40example.com".into(),
        "admin-secret-for-tests",
    )
    .await
    .expect("sent");
    assert_eq!(missing.status().as_u16(), 404);
    // Without an admin token configured the endpoints do not exist.
    let closed = env.app.get(&format!("/deliveries/{id}")).await;
    assert_eq!(closed.status().as_u16(), 404);
}
