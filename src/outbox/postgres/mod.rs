//! The PostgreSQL backend: the same [`Store`](crate::outbox::Store) as SQLite's, for several
//! bridges sharing one database. Ingest appends through the group-commit writer on a pool of its
//! own (one connection, re-opened after the server comes back); everything else goes through
//! [`PgStore`]'s pool. Org-wide state (the credentials pause, Tallyfy's 429 hold, the pacing
//! budget) lives in shared rows, so every replica sees the same; claims take rows with
//! `FOR UPDATE SKIP LOCKED`, and the unique `outbox_one_in_flight` index keeps one delivery per
//! email in flight across replicas.

mod admin;
mod append;
mod claim;
mod console;
mod pacing;
mod prune;
mod reads;
mod reconcile;
mod records;
mod refused;
mod results;
mod store;
mod worker_state;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::configuration::{DatabaseSettings, Synchronous};
use crate::time::now_ms;

pub use store::PgStore;

/// Schema changes for PostgreSQL, embedded in the binary (SQLite's are in `migrations/`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The URL's options (host, port, database, user, password, `sslmode`, `sslrootcert`, …) with
/// the bridge's own, whatever the server's defaults: a commit returns only once its WAL is
/// flushed (`synchronous_commit = on`, so a 2xx survives the server's power loss; `off` with
/// `database.synchronous = "normal"`), statements wait at most `busy_timeout` for a lock, and
/// are logged only at trace level.
pub(crate) fn connect_options(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> anyhow::Result<PgConnectOptions> {
    let lock_timeout = settings.busy_timeout.as_millis().to_string();
    let synchronous_commit = match settings.synchronous {
        Synchronous::Full => "on",
        Synchronous::Normal => "off",
    };
    Ok(PgConnectOptions::from_str(url.expose_secret())
        // The parser's message may quote the URL, and with it the password.
        .map_err(|_| anyhow::anyhow!("`database.url` is not a valid PostgreSQL URL"))?
        .application_name("tallyfy-bridge")
        .options([
            ("lock_timeout", lock_timeout.as_str()),
            ("synchronous_commit", synchronous_commit),
        ])
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// A pool of at most `max` connections that gives up on a connection after `busy_timeout`, so a
/// webhook gets 503 rather than waiting for a server that is down.
pub(crate) async fn open_pool(
    url: &SecretString,
    settings: &DatabaseSettings,
    max: u32,
) -> anyhow::Result<PgPool> {
    let options = connect_options(url, settings)?;
    // One connection first, so a refused login or an unknown database says so (the pool would
    // retry until its timeout and report only that).
    let first = options
        .connect()
        .await
        .context("Failed to connect to PostgreSQL")?;
    let _ = sqlx::Connection::close(first).await;
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(settings.busy_timeout.max(Duration::from_millis(100)))
        .connect_with(options)
        .await
        .context("Failed to connect to PostgreSQL")
}

/// `tallyfy-bridge migrate` on PostgreSQL.
pub async fn migrate_database(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> anyhow::Result<()> {
    let pool = open_pool(url, settings, 1).await?;
    migrate(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Applies the migrations; several bridges starting at once take turns (sqlx holds an advisory
/// lock while it migrates).
async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("Failed to apply database migrations")
}

/// Ready means: every embedded migration is applied and a write commits now.
async fn check_ready(pool: &PgPool) -> anyhow::Result<()> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .context("Failed to read applied migrations")?;
    anyhow::ensure!(
        applied == Some(latest),
        "migrations not applied (database at {applied:?}, binary expects {latest})"
    );
    sqlx::query("UPDATE storage_probe SET checked_at = $1 WHERE id = 1")
        .bind(now_ms())
        .execute(pool)
        .await
        .context("Failed to write to the database")?;
    Ok(())
}

/// A freshly migrated database of its own on the server `TEST_POSTGRES_URL` names
/// (`postgres://USER@HOST:PORT`, as `scripts/with-postgres.sh` exports it), for unit tests.
/// Without it: `None` after a notice, so the test passes, unless `REQUIRE_POSTGRES_TESTS=1`.
#[cfg(test)]
pub(crate) async fn test_pool() -> Option<PgPool> {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => {
            assert!(
                std::env::var("REQUIRE_POSTGRES_TESTS").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES_TESTS=1 but TEST_POSTGRES_URL is not set"
            );
            eprintln!("notice: TEST_POSTGRES_URL is not set; PostgreSQL unit test skipped");
            return None;
        }
    };
    let name = format!(
        "unit_{}_{}_{}",
        std::process::id(),
        now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{server}/{name}"))
        .await
        .expect("connect to the test database");
    MIGRATOR.run(&pool).await.expect("migrations");
    Some(pool)
}

/// The lines of PostgreSQL's plan for `sql` (written with literals: a plan has no parameters),
/// with sequential scans off on the connection: a test's tables hold a handful of rows, for
/// which PostgreSQL rightly prefers a scan; what these tests check is that an index fitting the
/// query exists and is usable, so hot queries stay flat as tables grow.
#[cfg(test)]
pub(crate) async fn query_plan(pool: &PgPool, sql: &str) -> Vec<String> {
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("seqscan off");
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *conn)
        .await
        .expect("plan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_schema_migrates_and_the_store_is_ready() {
        let Some(pool) = test_pool().await else {
            return;
        };
        check_ready(&pool).await.expect("ready");
    }

    /// The counters are deltas and totals: concurrent moves between states and compactions by
    /// two "replicas" at once leave `outbox_counts` equal to a real count.
    #[tokio::test]
    async fn state_counts_stay_exact_under_concurrent_moves_and_compactions() {
        let Some(pool) = test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
             SELECT 'canonical', 'c' || i || '@example.com', '{}', 0, 0, 0
             FROM generate_series(1, 300) AS i",
        )
        .execute(&pool)
        .await
        .expect("rows");
        let mover = |state: &'static str, modulo: i64| {
            let pool = pool.clone();
            async move {
                for round in 0..10_i64 {
                    sqlx::query(
                        "UPDATE outbox SET state = $1 WHERE id % $2 = $3 AND state = 'queued'",
                    )
                    .bind(state)
                    .bind(modulo)
                    .bind(round % modulo)
                    .execute(&pool)
                    .await
                    .expect("move");
                    sqlx::query("SELECT compact_counts()")
                        .execute(&pool)
                        .await
                        .expect("compact");
                }
            }
        };
        tokio::join!(
            mover("in_flight", 7),
            mover("delivered", 5),
            mover("failed", 11)
        );
        sqlx::query("DELETE FROM outbox WHERE id % 13 = 0")
            .execute(&pool)
            .await
            .expect("delete");
        let counted: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(&pool)
                .await
                .expect("count");
        let kept: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, n FROM outbox_counts WHERE n <> 0 ORDER BY state")
                .fetch_all(&pool)
                .await
                .expect("counts");
        assert_eq!(kept, counted);
        sqlx::query("SELECT compact_counts()")
            .execute(&pool)
            .await
            .expect("compact");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_count_deltas")
            .fetch_one(&pool)
            .await
            .expect("deltas");
        assert_eq!(left, 0);
        let kept: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, n FROM outbox_counts WHERE n <> 0 ORDER BY state")
                .fetch_all(&pool)
                .await
                .expect("counts");
        assert_eq!(kept, counted);
    }

    #[tokio::test]
    async fn sessions_commit_durably_whatever_the_server_default() {
        let Some(pool) = test_pool().await else {
            return;
        };
        let url: String = sqlx::query_scalar(
            "SELECT 'postgres://' || current_user || '@' || host(inet_server_addr()) || ':' || inet_server_port() || '/' || current_database()",
        )
        .fetch_one(&pool)
        .await
        .expect("own url");
        for (synchronous, expected) in [(Synchronous::Full, "on"), (Synchronous::Normal, "off")] {
            let settings = DatabaseSettings {
                url: None,
                path: "unused".into(),
                synchronous,
                busy_timeout: Duration::from_millis(1500),
                max_connections: 1,
                migrate_on_start: false,
            };
            let pool = open_pool(&SecretString::from(url.clone()), &settings, 1)
                .await
                .expect("pool");
            let (commit, lock): (String, String) = sqlx::query_as(
                "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')",
            )
            .fetch_one(&pool)
            .await
            .expect("settings");
            assert_eq!(commit, expected);
            assert_eq!(lock, "1500ms");
        }
    }
}
