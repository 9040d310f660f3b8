//! `spawn_app()`: the real `Application` on port 0 over a fresh database, plus helpers that post
//! contacts the way a CRM would and read the outbox back.
//!
//! One suite, two backends: the `api` target runs it on a temp SQLite file per test, the
//! `api_postgres` target (the same files) on a fresh PostgreSQL database per test, on the server
//! `TEST_POSTGRES_URL` names (`scripts/with-postgres.sh` starts a throwaway one). Without it the
//! PostgreSQL run prints a notice and passes, unless `REQUIRE_POSTGRES_TESTS=1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sqlx::{AnyPool, Connection};
use tallyfy_bridge::delivery::Worker;
use tallyfy_bridge::startup::{BuildOptions, Retention};
use tallyfy_bridge::{Application, Settings};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Settings a test changes, as `BRIDGE__SECTION__KEY` variables: they go through the same
/// layering and validation as an operator's, so a test cannot run settings `serve` would refuse.
pub type Overrides<'a> = &'a [(&'a str, String)];

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The application's own worker when it was built without its delivery loop
    /// ([`spawn_app_driven`]): tests drive it with `run_once`.
    pub worker: Option<Arc<Worker>>,
    /// The application's own prune, which tests run with `run_once` on their clock.
    pub retention: Arc<Retention>,
    options: BuildOptions,
    /// Kept so the database outlives one run of the app (restart tests).
    pub dir: Arc<TempDir>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Whether this run of the suite is the PostgreSQL one (the `api_postgres` target).
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "api_postgres"
}

/// Returns from the test on PostgreSQL: what it proves is SQLite's own (the file, its WAL,
/// `synchronous`, an upgrade of an old file).
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::helpers::on_postgres() {
            return;
        }
    };
}

/// The PostgreSQL server of this run, as `postgres://USER@HOST:PORT` (no database). Without one
/// the run ends here, passing with a notice, unless `REQUIRE_POSTGRES_TESTS=1`.
fn postgres_server() -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ if std::env::var("REQUIRE_POSTGRES_TESTS").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_POSTGRES_TESTS=1 but TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!(
                "notice: TEST_POSTGRES_URL is not set, so the API suite's PostgreSQL run is skipped \
                 (run it with `scripts/with-postgres.sh cargo test --test api_postgres`)"
            );
            std::process::exit(0);
        }
    }
}

/// The database of the test whose files are in `dir`: the SQLite file in it, or a PostgreSQL
/// database named after it (created by [`prepare_database`]).
pub fn database_url(dir: &Path) -> String {
    if on_postgres() {
        let name = dir
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "")
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        format!("{}/bridge_{}_{name}", postgres_server(), std::process::id())
    } else {
        format!("sqlite://{}", dir.join("bridge.sqlite").display())
    }
}

/// Creates the PostgreSQL database `settings` name if it does not exist yet (SQLite files are
/// created by the bridge itself).
pub async fn prepare_database(settings: &Settings) {
    if !on_postgres() {
        return;
    }
    use secrecy::ExposeSecret;
    let url = settings.database.url.as_ref().expect("a PostgreSQL URL");
    create_database(url.expose_secret()).await;
}

/// Creates the PostgreSQL database `url` names if it does not exist yet.
pub async fn create_database(url: &str) {
    let (server, name) = url.rsplit_once('/').expect("URL with a database");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connect to the test PostgreSQL server");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .expect("look the database up");
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
    }
    let _ = admin.close().await;
}

/// [`create_database`] from synchronous code (or a test's runtime, which must not block): on a
/// thread of its own with its own runtime. Nothing to do on SQLite.
pub fn create_database_blocking(url: &str) {
    if !on_postgres() {
        return;
    }
    let url = url.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(create_database(&url));
    })
    .join()
    .expect("create the test database");
}

/// The environment that points a bridge process at the database of a test whose SQLite file is
/// `file`: `BRIDGE__DATABASE__PATH`, and on PostgreSQL `BRIDGE__DATABASE__URL` naming the
/// database of `file`'s directory, created here.
pub fn database_env(file: &Path) -> Vec<(&'static str, String)> {
    let mut env = vec![("BRIDGE__DATABASE__PATH", file.display().to_string())];
    if on_postgres() {
        let url = database_url(file.parent().expect("a file in a directory"));
        create_database_blocking(&url);
        env.push(("BRIDGE__DATABASE__URL", url));
    }
    env
}

/// The URL of the database [`database_env`] gives a process for `file`, to read it back.
pub fn file_database_url(file: &Path) -> String {
    if on_postgres() {
        database_url(file.parent().expect("a file in a directory"))
    } else {
        format!("sqlite://{}", file.display())
    }
}

/// Test settings: signature auth, a database of `dir`'s own, port 0, two HTTP workers, no
/// delivery.
pub fn test_settings(dir: &Path) -> Settings {
    test_settings_with(dir, &[])
}

/// The same with `overrides` applied last.
pub fn test_settings_with(dir: &Path, overrides: Overrides) -> Settings {
    let env = [
        ("BRIDGE__HTTP__PORT", "0".to_string()),
        ("BRIDGE__HTTP__WORKERS", "2".into()),
        ("BRIDGE__HTTP__SHUTDOWN_TIMEOUT_SECS", "5".into()),
        (
            "BRIDGE__DATABASE__PATH",
            dir.join("bridge.sqlite").display().to_string(),
        ),
        (
            "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
            SIGNING_SECRET.into(),
        ),
        // Ingest tests look at rows as ingest left them; delivery tests turn it on.
        ("BRIDGE__DELIVERY__ENABLED", "false".into()),
        // A CRM API configured for the worker's reads would otherwise be reconciled at start.
        (
            "BRIDGE__SOURCES__PIPEDRIVE__RECONCILE_EVERY_SECS",
            "0".into(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__RECONCILE_EVERY_SECS", "0".into()),
        (
            "BRIDGE__SOURCES__SALESFORCE__RECONCILE_EVERY_SECS",
            "0".into(),
        ),
        (
            "BRIDGE__LOG__LEVEL",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()),
        ),
    ]
    .into_iter()
    // On SQLite the path alone names the file (so a test may point it elsewhere).
    .chain(on_postgres().then(|| ("BRIDGE__DATABASE__URL", database_url(dir))))
    .chain(overrides.iter().cloned())
    .map(|(k, v)| (k.to_string(), v));
    Settings::from_sources(Path::new("config"), None, env).expect("test settings are valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The app as `serve` runs it, with `overrides` on the test settings.
pub async fn spawn_app_with(overrides: Overrides<'_>) -> TestApp {
    spawn(overrides, BuildOptions::default()).await
}

/// The app with delivery configured by `overrides` but its loop not started: the test drives
/// the app's own worker (`app.worker`) with `run_once`, on `clock`.
pub async fn spawn_app_driven(
    overrides: Overrides<'_>,
    clock: Arc<dyn tallyfy_bridge::delivery::policy::Clock>,
) -> TestApp {
    let options = BuildOptions {
        clock,
        delivery_loop: false,
    };
    spawn(overrides, options).await
}

async fn spawn(overrides: Overrides<'_>, options: BuildOptions) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let settings = test_settings_with(dir.path(), overrides);
    start(settings, dir, options).await
}

async fn start(settings: Settings, dir: Arc<TempDir>, options: BuildOptions) -> TestApp {
    tallyfy_bridge::telemetry::init(&settings.log);
    prepare_database(&settings).await;
    let app = Application::build_with(settings.clone(), options.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let worker = app.worker().filter(|_| !options.delivery_loop);
    let retention = app.retention();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        settings,
        worker,
        retention,
        options,
        dir,
        stop,
        task: Some(task),
    }
}

impl TestApp {
    /// Stops gracefully and starts a new instance on the same database file.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        start(
            self.settings.clone(),
            self.dir.clone(),
            self.options.clone(),
        )
        .await
    }

    /// Stops gracefully and starts anew on the same database with `overrides` on the test
    /// settings, as an operator restarts with a changed setting (a new token).
    pub async fn restart_with(mut self, overrides: Overrides<'_>) -> TestApp {
        self.shutdown().await;
        let settings = test_settings_with(self.dir.path(), overrides);
        start(settings, self.dir.clone(), self.options.clone()).await
    }

    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("app task joins")
                .expect("app stops cleanly");
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.settings.database.path.clone()
    }

    /// Overrides that put another app on this app's database (`spawn_app_with`).
    pub fn same_database(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "BRIDGE__DATABASE__PATH",
                self.db_path().display().to_string(),
            ),
            ("BRIDGE__DATABASE__URL", database_url(self.dir.path())),
        ]
    }

    /// A separate pool on the app's database, as an operator's `sqlite3` or `psql` would open
    /// it. Queries written for both backends number their parameters `$1`, `$2`, ….
    pub async fn db(&self) -> AnyPool {
        use secrecy::ExposeSecret;
        sqlx::any::install_default_drivers();
        let url = match &self.settings.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.db_path().display()),
        };
        AnyPool::connect(&url).await.expect("open db")
    }

    /// Another bridge on this one's database (a second replica, on PostgreSQL), with the same
    /// settings and build options: its own writer, worker and pools.
    pub async fn beside(&self) -> TestApp {
        start(
            self.settings.clone(),
            self.dir.clone(),
            self.options.clone(),
        )
        .await
    }

    pub async fn outbox_rows(&self) -> i64 {
        let db = self.db().await;
        let n = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&db)
            .await
            .expect("count");
        db.close().await;
        n
    }

    /// Posts `body` signed as a Standard Webhooks sender with event id `id`.
    pub async fn post_signed(&self, id: &str, body: &str) -> reqwest::Response {
        let url = format!("{}/webhooks/contacts", self.address);
        signed_post(&self.client, &url, id, body)
            .send()
            .await
            .expect("request sent")
    }

    /// A signed contact with a fresh event id.
    pub async fn post_contact(&self, contact: Value) -> reqwest::Response {
        let id = format!("msg_{}", uuid_like());
        self.post_signed(&id, &contact.to_string()).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A CRM's webhook: `body` to `url`, signed now as a Standard Webhooks sender, event id `id`.
pub fn signed_post(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    let timestamp = chrono::Utc::now().timestamp();
    client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(id, timestamp, body))
        .body(body.to_owned())
}

pub fn sign(id: &str, timestamp: i64, body: &str) -> String {
    sign_with(SIGNING_SECRET, id, timestamp, body)
}

pub fn sign_with(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .sign(id, timestamp, body.as_bytes())
        .expect("sign")
}

/// Unique enough for event ids within one test process.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `{"error": {...}}` body of a refused request.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error body");
    (status, body["error"].clone())
}

/// Serves a fake vendor API on a free loopback port for the rest of the test: one worker, no
/// signal handling, `configure`'s routes over `state`. The base URL.
pub fn serve_fake<S: Send + Sync + 'static>(
    state: std::sync::Arc<S>,
    configure: fn(&mut actix_web::web::ServiceConfig),
) -> String {
    use actix_web::{App, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shared = web::Data::from(state);
    let server = HttpServer::new(move || App::new().app_data(shared.clone()).configure(configure))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}
