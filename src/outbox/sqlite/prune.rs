//! Retention: deleting end-state rows (with their attempt logs), refused items and audit entries
//! older than their ages, in short batches off the hot path. The guest ledger is never touched.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use crate::configuration::RetentionSettings;
use crate::outbox::{Pruned, RowState};

/// A prune this large leaves a WAL worth truncating (its free pages stay in the file for reuse).
const LARGE_PRUNE_ROWS: u64 = 10_000;
/// A longer prune also truncates the WAL after every this many rows, so its file goes back to
/// 0 bytes during the run too (the per-second checkpoint only starts it over). Each truncation holds webhook commits for its last step: every 10,000 rows raised the
/// webhook p99 under full ingest from ~35 ms to ~0.1 s in the quick bench.
const TRUNCATE_EVERY_ROWS: u64 = 100_000;

/// ?1 state, ?2 ended before, ?3 how many: the oldest rows of one end state. The OR chain
/// repeats the `outbox_ended` index's WHERE so SQLite may use it with a bound state.
///
/// Each table keeps its newest row (by id) whatever its age: SQLite numbers a new row max(id) + 1,
/// so deleting the newest would hand its id, which the ledger, the audit trail and operators'
/// notes may name, to another row.
const OLD_ROWS: &str = "SELECT id FROM outbox INDEXED BY outbox_ended
     WHERE (state = 'delivered' OR state = 'failed' OR state = 'cancelled') AND state = ?1
       AND updated_at < ?2
       AND id < (SELECT max(id) FROM outbox)
     ORDER BY updated_at LIMIT CAST(?3 AS INTEGER)";
/// ?1 the batch's ids as a JSON array.
const DELETE_ATTEMPTS: &str = "DELETE FROM delivery_attempts INDEXED BY delivery_attempts_outbox
     WHERE outbox_id IN (SELECT value FROM json_each(?1))";
/// ?1 ids, ?2 now. A row attempted and not delivered may have created its guest unseen: its
/// email is remembered, so a later row of it looks the guest up before any create. `NOT
/// INDEXED` leaves only the rowid: without statistics SQLite would pick a state index.
const REMEMBER_ATTEMPTED: &str =
    "INSERT OR IGNORE INTO attempted_emails (email, outbox_id, pruned_at)
     SELECT email, id, ?2 FROM outbox NOT INDEXED
     WHERE id IN (SELECT value FROM json_each(?1))
       AND state IN ('failed', 'cancelled') AND attempts > 0 AND email IS NOT NULL";
const DELETE_ROWS: &str =
    "DELETE FROM outbox NOT INDEXED WHERE id IN (SELECT value FROM json_each(?1))";
/// ?1 before, ?2 how many.
const DELETE_REFUSED: &str = "DELETE FROM refused WHERE id IN (
     SELECT id FROM refused INDEXED BY refused_at
     WHERE refused_at < ?1 AND id < (SELECT max(id) FROM refused) LIMIT CAST(?2 AS INTEGER))";
const DELETE_AUDIT: &str = "DELETE FROM admin_audit WHERE id IN (
     SELECT id FROM admin_audit INDEXED BY admin_audit_at
     WHERE at < ?1 AND id < (SELECT max(id) FROM admin_audit) LIMIT CAST(?2 AS INTEGER))";

/// What one batch deletes from.
#[derive(Clone, Copy)]
enum Target {
    Outbox(RowState),
    Refused,
    Audit,
}

/// Deletes everything `policy` calls old at `now`, batch by batch, each in its `turn` with the
/// ingest writer, then records the run in `worker_state` and, after a large prune, truncates
/// the WAL (`wal` is its path).
pub(super) async fn prune(
    pool: &SqlitePool,
    turn: &Mutex<()>,
    wal: &Path,
    now: i64,
    policy: &RetentionSettings,
) -> anyhow::Result<Pruned> {
    let limit = policy.batch_rows as u64;
    let mut pruned = Pruned::default();
    for (target, age) in [
        (Target::Outbox(RowState::Delivered), policy.delivered),
        (Target::Outbox(RowState::Failed), policy.failed),
        (Target::Outbox(RowState::Cancelled), policy.cancelled),
        (Target::Refused, policy.refused),
        (Target::Audit, policy.audit),
    ] {
        let Some(before) = cutoff(now, age) else {
            continue;
        };
        loop {
            let (deleted, held) = {
                let _turn = turn.lock().await;
                let started = Instant::now();
                let deleted = batch(pool, target, before, limit, now, &mut pruned).await?;
                (deleted, started.elapsed())
            };
            if deleted < limit {
                break;
            }
            if pruned.rows() / TRUNCATE_EVERY_ROWS > (pruned.rows() - deleted) / TRUNCATE_EVERY_ROWS
            {
                truncate_wal(pool, turn, wal, &mut pruned).await?;
            }
            // As long as the batch held the write lock: ingest's commits get at least half.
            tokio::time::sleep(held).await;
        }
    }
    sqlx::query("UPDATE worker_state SET last_prune_at = ?1, last_prune_rows = ?2 WHERE id = 1")
        .bind(now)
        .bind(pruned.rows() as i64)
        .execute(pool)
        .await
        .context("Failed to record the prune")?;
    if pruned.rows() >= LARGE_PRUNE_ROWS || file_bytes(wal) >= super::checkpoint::WAL_SIZE_LIMIT {
        truncate_wal(pool, turn, wal, &mut pruned).await?;
    }
    Ok(pruned)
}

/// `now` minus `age` in ms, or `None` for an age of 0 (keep forever).
fn cutoff(now: i64, age: Duration) -> Option<i64> {
    let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    (age > 0).then(|| now.saturating_sub(age))
}

/// Deletes up to `limit` rows of `target` older than `before` in one transaction, adds them to
/// `pruned` and returns how many rows it deleted.
async fn batch(
    pool: &SqlitePool,
    target: Target,
    before: i64,
    limit: u64,
    now: i64,
    pruned: &mut Pruned,
) -> anyhow::Result<u64> {
    let mut tx = begin(pool).await?;
    let deleted = match target {
        Target::Outbox(state) => outbox_batch(&mut tx, state, before, limit, now, pruned).await?,
        Target::Refused => {
            let deleted = delete_old(&mut tx, DELETE_REFUSED, before, limit).await?;
            pruned.refused += deleted;
            deleted
        }
        Target::Audit => {
            let deleted = delete_old(&mut tx, DELETE_AUDIT, before, limit).await?;
            pruned.audit += deleted;
            deleted
        }
    };
    tx.commit()
        .await
        .context("Failed to commit a prune batch")?;
    if deleted > 0 {
        pruned.batches += 1;
    }
    Ok(deleted)
}

/// The oldest rows of `state`: their attempt logs first (they reference the rows), the emails
/// of those attempted and not delivered, then the rows.
async fn outbox_batch(
    conn: &mut SqliteConnection,
    state: RowState,
    before: i64,
    limit: u64,
    now: i64,
    pruned: &mut Pruned,
) -> anyhow::Result<u64> {
    let ids: Vec<i64> = sqlx::query_scalar(OLD_ROWS)
        .bind(state)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await
        .context("Failed to find old outbox rows")?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids = serde_json::to_string(&ids).context("Failed to encode row ids")?;
    pruned.attempts += execute(conn, DELETE_ATTEMPTS, &ids, None).await?;
    pruned.attempted_emails += execute(conn, REMEMBER_ATTEMPTED, &ids, Some(now)).await?;
    let deleted = execute(conn, DELETE_ROWS, &ids, None).await?;
    pruned.outbox += deleted;
    Ok(deleted)
}

async fn delete_old(
    conn: &mut SqliteConnection,
    sql: &'static str,
    before: i64,
    limit: u64,
) -> anyhow::Result<u64> {
    Ok(sqlx::query(sql)
        .bind(before)
        .bind(limit as i64)
        .execute(conn)
        .await
        .context("Failed to delete old rows")?
        .rows_affected())
}

/// A write transaction from its first statement: a read-then-write one could fail when
/// ingest commits between the two.
async fn begin(pool: &SqlitePool) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .context("Failed to begin a prune batch")
}

async fn execute(
    conn: &mut SqliteConnection,
    sql: &'static str,
    ids_json: &str,
    now: Option<i64>,
) -> anyhow::Result<u64> {
    let mut query = sqlx::query(sql).bind(ids_json);
    if let Some(now) = now {
        query = query.bind(now);
    }
    Ok(query
        .execute(conn)
        .await
        .context("Failed to prune a batch of outbox rows")?
        .rows_affected())
}

/// How long emptying the WAL waits for readers before it gives up until the next prune: it
/// blocks every writer while it waits. With the busy timeout (5 s by default) instead, each
/// prune under a steady load stopped webhooks for up to 5 s every 5 minutes (issue 18's soak:
/// thousands of connections piled up, and the bridge's memory grew at each stop).
const TRUNCATE_WAIT_MS: i64 = 100;

/// Copies the WAL into the file without blocking anyone, then, in the writer's turn, empties
/// it: the second step only has the frames committed meanwhile to copy, and waits at most
/// [`TRUNCATE_WAIT_MS`] for readers, so webhooks wait for it briefly. Notes the largest WAL
/// seen and its size after, in `pruned`.
async fn truncate_wal(
    pool: &SqlitePool,
    turn: &Mutex<()>,
    wal: &Path,
    pruned: &mut Pruned,
) -> anyhow::Result<()> {
    let before = file_bytes(wal);
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to checkpoint the WAL during a prune")?;
    super::checkpoint::passive(&mut conn).await?;
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .context("Failed to read the busy timeout")?;
    set_busy_timeout(&mut conn, TRUNCATE_WAIT_MS).await?;
    let truncated = {
        let _turn = turn.lock().await;
        checkpoint(&mut conn, "PRAGMA wal_checkpoint(TRUNCATE)").await
    };
    set_busy_timeout(&mut conn, busy_timeout).await?;
    truncated?;
    let largest = pruned.wal_truncated.map_or(0, |(largest, _)| largest);
    pruned.wal_truncated = Some((largest.max(before), file_bytes(wal)));
    Ok(())
}

async fn set_busy_timeout(conn: &mut SqliteConnection, ms: i64) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {ms}")))
        .execute(&mut *conn)
        .await
        .context("Failed to set the busy timeout")?;
    Ok(())
}

async fn checkpoint(conn: &mut SqliteConnection, sql: &'static str) -> anyhow::Result<()> {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as(sql)
        .fetch_one(&mut *conn)
        .await
        .context("Failed to checkpoint the WAL during a prune")?;
    if busy != 0 {
        tracing::info!("The WAL was not truncated during a prune: a reader still used it");
    }
    Ok(())
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::MAX_BATCH_ROWS;
    use crate::outbox::sqlite::query_plan;

    /// A prune batch runs every few minutes beside ingest: a `SCAN` of the outbox (or of the
    /// attempt log, refused items or audit trail) would hold the write lock for as long as the
    /// table is big.
    #[tokio::test]
    async fn a_prune_batch_reads_only_indexes() {
        for (sql, index) in [
            (OLD_ROWS, "outbox_ended"),
            (DELETE_ATTEMPTS, "delivery_attempts_outbox"),
            (REMEMBER_ATTEMPTED, "INTEGER PRIMARY KEY"),
            (DELETE_ROWS, "INTEGER PRIMARY KEY"),
            (DELETE_REFUSED, "refused_at"),
            (DELETE_AUDIT, "admin_audit_at"),
        ] {
            let detail = query_plan(sql).await;
            assert!(
                detail
                    .iter()
                    .all(|d| !d.starts_with("SCAN") || d.starts_with("SCAN json_each")),
                "{sql}: {detail:?}"
            );
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{sql}: {detail:?}"
            );
            assert!(
                !detail.iter().any(|d| d.contains("TEMP B-TREE")),
                "{sql}: {detail:?}"
            );
        }
    }

    /// What the rules keep and remember, on rows written straight into a migrated file with
    /// foreign keys on (so the attempt logs must go first), in batches of two.
    #[tokio::test]
    async fn pruning_keeps_the_ledger_the_newest_row_and_the_emails_a_create_may_have_reached() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prune.sqlite");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.expect("open");
        crate::outbox::sqlite::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate");
        // (state, attempts, email), all ended at 0; the last one is the newest row.
        let rows = [
            ("queued", 0, Some("q@x.com")),
            ("delivered", 1, Some("d1@x.com")),
            ("delivered", 1, Some("d2@x.com")),
            ("failed", 2, Some("f@x.com")),
            ("cancelled", 1, Some("c@x.com")),
            ("cancelled", 0, Some("never@x.com")),
            ("failed", 1, None),
            ("delivered", 1, Some("d3@x.com")),
        ];
        for (n, (state, attempts, email)) in rows.into_iter().enumerate() {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (source, event_id, email, crm_record, payload, state, attempts,
                                     next_attempt_at, received_at, updated_at)
                 VALUES ('contacts', ?1, ?2, 'rec', '{}', ?3, ?4, 0, 0, 0) RETURNING id",
            )
            .bind(format!("e{n}"))
            .bind(email)
            .bind(state)
            .bind(attempts)
            .fetch_one(&pool)
            .await
            .expect("row");
            if attempts > 0 {
                sqlx::query(
                    "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, outcome)
                     VALUES (?1, 1, 0, 1, 'retry')",
                )
                .bind(id)
                .execute(&pool)
                .await
                .expect("attempt");
            }
        }
        for sql in [
            "INSERT INTO guest_ledger VALUES ('org', 'd1@x.com', 'g1', 2, 'created', 0)",
            "INSERT INTO refused (source, reason, field, refused_at) VALUES ('hubspot', 'missing_email', 'email', 0), ('hubspot', 'missing_email', 'email', 0)",
            "INSERT INTO admin_audit (at, action, affected) VALUES (0, 'retry', 1), (0, 'cancel', 1)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        let second = Duration::from_secs(1);
        let policy = RetentionSettings {
            delivered: second,
            failed: second,
            cancelled: second,
            refused: second,
            audit: second,
            every: second,
            batch_rows: 2,
        };

        let turn = Mutex::new(());
        let pruned = prune(
            &pool,
            &turn,
            &path.with_extension("sqlite-wal"),
            10_000,
            &policy,
        )
        .await
        .expect("prune");

        assert_eq!(
            (pruned.outbox, pruned.attempts, pruned.refused, pruned.audit),
            (6, 5, 1, 1),
            "{pruned:?}"
        );
        assert_eq!(
            pruned.batches, 5,
            "two per batch: d1+d2, f+f, c+c, refused, audit"
        );
        let left: Vec<String> = sqlx::query_scalar("SELECT email FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
        assert_eq!(left, ["q@x.com", "d3@x.com"], "waiting and newest kept");
        let remembered: Vec<String> =
            sqlx::query_scalar("SELECT email FROM attempted_emails ORDER BY email")
                .fetch_all(&pool)
                .await
                .expect("emails");
        assert_eq!(remembered, ["c@x.com", "f@x.com"]);
        assert_eq!(pruned.attempted_emails, 2);
        let counted: i64 = sqlx::query_scalar("SELECT sum(n) FROM outbox_counts")
            .fetch_one(&pool)
            .await
            .expect("counts");
        assert_eq!(counted, 2, "the triggers kept the counts");
        let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM guest_ledger")
            .fetch_one(&pool)
            .await
            .expect("ledger");
        assert_eq!(ledger, 1);
        let recorded: (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT last_prune_at, last_prune_rows FROM worker_state")
                .fetch_one(&pool)
                .await
                .expect("worker state");
        assert_eq!(recorded, (Some(10_000), Some(8)));
        let refused_left: i64 = sqlx::query_scalar("SELECT sum(n) FROM refused_counts")
            .fetch_one(&pool)
            .await
            .expect("refused counts");
        assert_eq!(refused_left, 1);
    }

    /// A WAL-mode file (busy timeout 5 s) on a one-connection pool, holding 12,001 delivered
    /// rows; and a policy that prunes every delivered row but the newest.
    async fn delivered_rows(
        path: &Path,
    ) -> (
        sqlx::sqlite::SqliteConnectOptions,
        SqlitePool,
        RetentionSettings,
    ) {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .pragma("wal_autocheckpoint", "0");
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("open");
        crate::outbox::sqlite::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate");
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12001)
             INSERT INTO outbox (source, event_id, email, payload, state, attempts, next_attempt_at,
                                 received_at, updated_at)
             SELECT 'contacts', 'e' || i, 'u' || i || '@x.com', '{}', 'delivered', 1, 0, 0, 0 FROM n",
        )
        .execute(&pool)
        .await
        .expect("rows");
        let policy = RetentionSettings {
            delivered: Duration::from_secs(1),
            failed: Duration::ZERO,
            cancelled: Duration::ZERO,
            refused: Duration::ZERO,
            audit: Duration::ZERO,
            every: Duration::from_secs(1),
            batch_rows: MAX_BATCH_ROWS,
        };
        (options, pool, policy)
    }

    /// A large prune leaves its deletions in the WAL; the TRUNCATE afterwards empties it (the
    /// free pages stay in the database file).
    #[tokio::test]
    async fn a_large_prune_truncates_the_wal() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wal.sqlite");
        let (_, pool, policy) = delivered_rows(&path).await;
        let wal = path.with_extension("sqlite-wal");

        let pruned = prune(&pool, &Mutex::new(()), &wal, 10_000, &policy)
            .await
            .expect("prune");

        assert_eq!(pruned.outbox, 12_000);
        let (before, after) = pruned.wal_truncated.expect("truncated after 12,000 rows");
        assert!(before > 1_000_000, "{before}");
        assert_eq!((after, file_bytes(&wal)), (0, 0));
    }

    /// Emptying the WAL blocks every writer while it waits for readers: a reader that keeps an
    /// old snapshot must cost webhooks at most `TRUNCATE_WAIT_MS`, not the busy timeout, and
    /// the connection keeps its busy timeout afterwards.
    #[tokio::test]
    async fn a_reader_on_the_wal_holds_its_truncation_back_only_briefly() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wal.sqlite");
        let (options, pool, policy) = delivered_rows(&path).await;
        let mut reader = sqlx::ConnectOptions::connect(&options)
            .await
            .expect("reader");
        sqlx::query("BEGIN")
            .execute(&mut reader)
            .await
            .expect("begin");
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&mut reader)
            .await
            .expect("read");

        let started = Instant::now();
        let wal = path.with_extension("sqlite-wal");
        let pruned = prune(&pool, &Mutex::new(()), &wal, 10_000, &policy)
            .await
            .expect("prune");

        assert_eq!(pruned.outbox, 12_000);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let (_, after) = pruned.wal_truncated.expect("tried after 12,000 rows");
        assert!(after > 0, "the reader's snapshot keeps the WAL");
        let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&pool)
            .await
            .expect("busy timeout");
        assert_eq!(busy_timeout, 5_000);
    }

    #[test]
    fn an_age_of_zero_keeps_forever() {
        assert_eq!(cutoff(10_000, Duration::ZERO), None);
        assert_eq!(cutoff(10_000, Duration::from_secs(3)), Some(7_000));
        assert_eq!(cutoff(10_000, Duration::MAX), Some(10_000 - i64::MAX));
    }
}
