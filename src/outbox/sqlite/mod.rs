//! The SQLite backend: the only code that speaks SQL. Ingest appends through the group-commit
//! [`writer`] on its own connection; everything else goes through [`SqliteStore`]'s pool.

mod admin;
mod append;
mod checkpoint;
mod claim;
mod console;
pub mod identity;
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

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::configuration::{DatabaseSettings, Synchronous};
use crate::time::now_ms;

pub use admin::list_deliveries;
pub use claim::claim_due;
pub use identity::{DatabaseFile, FileLost};
pub use store::SqliteStore;

/// Schema changes, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<SqliteConnectOptions> {
    if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create database directory {}", dir.display()))?;
    }
    let path = settings.path.to_string_lossy();
    let synchronous = match settings.synchronous {
        Synchronous::Full => SqliteSynchronous::Full,
        Synchronous::Normal => SqliteSynchronous::Normal,
    };
    Ok(SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .with_context(|| format!("Failed to parse database path {path}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(settings.busy_timeout)
        .foreign_keys(true)
        // Checkpoints run in the background (`checkpoint::copy_wal`), never inside a
        // webhook's commit.
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", checkpoint::WAL_SIZE_LIMIT.to_string())
        // The claim's GROUP BY and ORDER BY, and statement journals, build temporary B-trees:
        // in memory, not in a file created and deleted under /var/tmp each time.
        .pragma("temp_store", "memory")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// The shared pool for reads and worker updates. Refuses to create an empty database where one
/// existed (see [`identity`]); call [`identity::adopt`] once migrations are applied.
async fn open_pool(settings: &DatabaseSettings) -> anyhow::Result<SqlitePool> {
    identity::refuse_silent_recreation(&settings.path)?;
    let options = connect_options(settings)?;
    SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .connect_with(options)
        .await
        .with_context(|| format!("Failed to open database {}", settings.path.display()))
}

/// The ingest writer's own connection, outside the pool so it never waits for a pool slot.
pub async fn open_writer_connection(
    settings: &DatabaseSettings,
) -> anyhow::Result<SqliteConnection> {
    connect_options(settings)?
        .connect()
        .await
        .with_context(|| format!("Failed to open database {}", settings.path.display()))
}

/// `tallyfy-bridge migrate`: applies the migrations and records the file's identity.
pub async fn migrate_file(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let pool = open_pool(settings).await?;
    migrate(&pool).await?;
    identity::adopt(&pool, &settings.path).await?;
    pool.close().await;
    Ok(())
}

async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("Failed to apply database migrations")
}

/// Ready means: every embedded migration is applied and a write commits now (a read-only file,
/// a full disk or a lock held past the busy timeout all fail it).
async fn check_ready(pool: &SqlitePool) -> anyhow::Result<()> {
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
    let mut tx = pool.begin().await.context("Failed to begin a write")?;
    sqlx::query("UPDATE storage_probe SET checked_at = ?1 WHERE id = 1")
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .context("Failed to write to the database")?;
    tx.commit()
        .await
        .context("Failed to commit a write to the database")?;
    Ok(())
}

/// The most rows one multi-row statement takes: 256 rows of 8 values stay far below SQLite's
/// 32,766 bound variables whatever `ingest.max_batch` is.
const MAX_STATEMENT_ROWS: usize = 256;

/// Splits `items` into runs whose lengths are powers of two, largest first (37: 32, 4, 1), at
/// most [`MAX_STATEMENT_ROWS`] each. sqlx keeps every statement text it prepares for the
/// connection's life (up to 100 of them) and a multi-row statement's text depends on its row
/// count, about a KiB of prepared program per row: one text per batch size would keep growing
/// the writer's memory as rarer batch sizes turn up, and prepare each of them once more.
pub(super) fn runs<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let len = rest.len().min(MAX_STATEMENT_ROWS);
        if len == 0 {
            return None;
        }
        let (run, tail) = rest.split_at(1 << len.ilog2());
        rest = tail;
        Some(run)
    })
}

/// A freshly migrated in-memory database on one connection (every connection to
/// `sqlite::memory:` is a database of its own), for unit tests.
#[cfg(test)]
pub(crate) async fn memory_pool() -> SqlitePool {
    memory_pool_at(MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)).await
}

/// The same, migrated up to `version` only.
#[cfg(test)]
async fn memory_pool_at(version: i64) -> SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("memory db");
    MIGRATOR.run_to(version, &pool).await.expect("migrations");
    pool
}

/// The SQL of every statement cached on `pool`'s one connection that SQLite has prepared again
/// since it was first prepared, but sqlx's own migration bookkeeping (each migration changes
/// the schema under it).
///
/// Why every `LIMIT` and `OFFSET` bound here is written `CAST(?n AS INTEGER)`: the bundled
/// SQLite's planner reads a bare parameter's value there, and marks the statement stale
/// whenever that parameter is bound anew, so each run was parsed and planned from scratch. The claim cost
/// ~860,000 instructions a call that way, most of the delivery worker's CPU at low
/// concurrency (issue 18). A cast is an expression the planner does not read.
#[cfg(test)]
pub(crate) async fn reprepared(pool: &SqlitePool) -> Vec<String> {
    use libsqlite3_sys::sqlite3_stmt_status;
    use libsqlite3_sys::{SQLITE_STMTSTATUS_REPREPARE, sqlite3_next_stmt, sqlite3_sql};

    let mut conn = pool.acquire().await.expect("connection");
    let mut handle = conn.lock_handle().await.expect("handle");
    let db = handle.as_raw_handle().as_ptr();
    let mut found = Vec::new();
    // SAFETY: `db` is this locked connection's handle, used on this thread only while the lock
    // is held; the statements are only read, and each `sqlite3_sql` string is copied before
    // the next call.
    unsafe {
        let mut stmt = sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            if sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_REPREPARE, 0) > 0 {
                let sql = std::ffi::CStr::from_ptr(sqlite3_sql(stmt)).to_string_lossy();
                if !sql.contains("_sqlx_migrations") {
                    found.push(sql.into_owned());
                }
            }
            stmt = sqlite3_next_stmt(db, stmt);
        }
    }
    found
}

/// The lines of SQLite's plan for `sql` on a freshly migrated database, for tests that keep
/// hot queries off full scans.
#[cfg(test)]
pub(crate) async fn query_plan(sql: &str) -> Vec<String> {
    let pool = memory_pool().await;
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&pool)
            .await
            .expect("plan");
    plan.into_iter().map(|row| row.3).collect()
}

/// How many temporary B-trees (`OpenEphemeral`) one run of `sql` opens, as SQLite compiles it
/// on a freshly migrated database.
#[cfg(test)]
pub(crate) async fn temporary_tables(sql: &str) -> usize {
    use sqlx::Row;

    let pool = memory_pool().await;
    let program = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&pool)
        .await
        .expect("program");
    program
        .iter()
        .filter(|op| op.try_get::<String, _>("opcode").expect("opcode") == "OpenEphemeral")
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_powers_of_two_largest_first_and_bounded() {
        let lengths = |n: usize| runs(&vec![(); n]).map(<[()]>::len).collect::<Vec<_>>();
        assert_eq!(lengths(0), Vec::<usize>::new());
        assert_eq!(lengths(1), [1]);
        assert_eq!(lengths(37), [32, 4, 1]);
        assert_eq!(lengths(600), [256, 256, 64, 16, 8]);
    }

    /// SQLite tests `x IN ('a', 'b', 'c')` (three constants or more) by filling a temporary
    /// B-tree, once per statement run: the outbox's CHECK on `state` and its partial indexes'
    /// WHERE clauses did that on every insert, update and delete, several times over (issue 18).
    #[tokio::test]
    async fn writing_an_outbox_row_builds_no_temporary_table() {
        for sql in [
            "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
             VALUES ('canonical', 'a@x.io', '{}', 1, 1, 1)",
            "UPDATE outbox SET state = 'delivered' WHERE id = 1",
            "UPDATE outbox SET state = 'in_flight', lease_until = 2 WHERE id = 1",
            "DELETE FROM outbox WHERE id = 1",
        ] {
            assert_eq!(temporary_tables(sql).await, 0, "{sql}");
        }
    }

    /// The rebuild that rewrote those tests (20261204000002) keeps every row as it was, with
    /// its counts and its attempt log.
    #[tokio::test]
    async fn the_outbox_rebuild_keeps_every_row() {
        let pool = memory_pool_at(20261204000001).await;
        for (i, state) in crate::outbox::RowState::ALL.into_iter().enumerate() {
            let i = i as i64;
            sqlx::query(
                "INSERT INTO outbox (source, event_id, email, crm_record, payload, state, attempts,
                     next_attempt_at, lease_until, guest_id, last_error, received_at, updated_at,
                     delivered_at, retried_at, attempts_before_retry)
                 VALUES ('pipedrive', 'e' || ?1, CASE WHEN ?1 % 2 = 0 THEN 'p' || ?1 || '@x.io' END,
                     'person:' || ?1, '{}', ?2, ?1, 10 + ?1, 20 + ?1, 'g' || ?1, 'error ' || ?1,
                     30 + ?1, 40 + ?1, 50 + ?1, 60 + ?1, ?1)",
            )
            .bind(i)
            .bind(state.as_str())
            .execute(&pool)
            .await
            .expect("row");
        }
        sqlx::query(
            "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, outcome)
             VALUES (4, 1, 1, 1, 'delivered')",
        )
        .execute(&pool)
        .await
        .expect("attempt");
        const ROWS: &str = "SELECT json_group_array(json_array(id, source, event_id, email,
                 crm_record, claim_key, payload, state, attempts, next_attempt_at, lease_until,
                 guest_id, last_error, received_at, updated_at, delivered_at, retried_at,
                 attempts_before_retry))
             FROM (SELECT * FROM outbox ORDER BY id)";
        const COUNTS: &str = "SELECT json_group_array(json_array(state, n)) FROM (SELECT * FROM outbox_counts ORDER BY state)";
        async fn read(pool: &SqlitePool, sql: &'static str) -> String {
            sqlx::query_scalar(sql).fetch_one(pool).await.expect("read")
        }
        let (rows, counts) = (read(&pool, ROWS).await, read(&pool, COUNTS).await);

        MIGRATOR.run(&pool).await.expect("migrations");

        assert_eq!(read(&pool, ROWS).await, rows);
        assert_eq!(read(&pool, COUNTS).await, counts);
        assert!(counts.contains(r#"["queued",1]"#), "{counts}");
        let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .expect("foreign keys");
        assert!(broken.is_empty(), "{broken:?}");
        // Counted by the rebuilt triggers from here on.
        sqlx::query("UPDATE outbox SET state = 'delivered' WHERE state = 'queued'")
            .execute(&pool)
            .await
            .expect("update");
        assert!(read(&pool, COUNTS).await.contains(r#"["delivered",2]"#));
    }
}
