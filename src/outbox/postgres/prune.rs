//! Retention on PostgreSQL: deleting end-state rows (with their attempt logs), refused items and
//! audit entries older than their ages, in short batches off the hot path. The guest ledger is
//! never touched.
//!
//! Unlike SQLite's, this prune keeps no table's newest row: SQLite numbers a new row max(id) + 1,
//! so deleting the newest would hand its id to another row, but PostgreSQL's identity sequences
//! never give an id twice, whatever is deleted. Nor does it truncate a WAL or take turns with the
//! ingest writer: PostgreSQL's write-ahead log is the server's, recycled at its checkpoints
//! (there is no file of ours to empty), and concurrent writers do not exclude each other, so a
//! batch only has to keep its transaction short, not wait for a turn.
//!
//! Several replicas may prune at once, and operators may retry a failed or cancelled row while a
//! batch runs: each batch locks the rows it chose (`FOR UPDATE SKIP LOCKED`) before deleting
//! them, so a row an operator is retrying is skipped, a row a batch chose cannot be retried
//! until the batch is gone (the retry then finds no row), and two replicas never delete, count
//! or remember the same row.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use crate::configuration::RetentionSettings;
use crate::outbox::{Pruned, RowState};

/// $1 state, $2 ended before, $3 how many: the oldest rows of one end state, locked. The IN list
/// repeats the `outbox_ended` index's WHERE so the planner sees the partial index applies.
const OLD_ROWS: &str = "SELECT id FROM outbox
     WHERE state IN ('delivered', 'failed', 'cancelled') AND state = $1 AND updated_at < $2
     ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED";
/// $1 the batch's ids.
const DELETE_ATTEMPTS: &str = "DELETE FROM delivery_attempts WHERE outbox_id = ANY($1)";
/// $1 ids, $2 now. A row attempted and not delivered may have created its guest unseen: its
/// email is remembered, so a later row of it looks the guest up before any create. The first
/// row of an email (by id) is the one remembered, as SQLite's `INSERT OR IGNORE` does.
const REMEMBER_ATTEMPTED: &str = "INSERT INTO attempted_emails (email, outbox_id, pruned_at)
     SELECT email, id, $2 FROM outbox
     WHERE id = ANY($1)
       AND state IN ('failed', 'cancelled') AND attempts > 0 AND email IS NOT NULL
     ORDER BY id
     ON CONFLICT (email) DO NOTHING";
const DELETE_ROWS: &str = "DELETE FROM outbox WHERE id = ANY($1)";
/// $1 before, $2 how many. Rows locked elsewhere (ingest resolving a refusal, another replica's
/// batch) are left for the next batch rather than waited for.
const DELETE_REFUSED: &str = "DELETE FROM refused WHERE id IN (
     SELECT id FROM refused WHERE refused_at < $1
     ORDER BY refused_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)";
const DELETE_AUDIT: &str = "DELETE FROM admin_audit WHERE id IN (
     SELECT id FROM admin_audit WHERE at < $1
     ORDER BY at, id LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// What one batch deletes from.
#[derive(Clone, Copy)]
enum Target {
    Outbox(RowState),
    Refused,
    Audit,
}

/// Deletes everything `policy` calls old at `now`, batch by batch (one short transaction each),
/// then records the run in `worker_state` (org-wide: the last replica's prune wins).
pub(super) async fn prune(
    pool: &PgPool,
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
            let started = Instant::now();
            let deleted = batch(pool, target, before, limit, now, &mut pruned).await?;
            let held = started.elapsed();
            if deleted < limit {
                break;
            }
            // As long as the batch took: its DELETE's trigger held the end state's row of
            // `outbox_counts` until the commit, which every worker recording a delivery also
            // updates, so they get at least half the time.
            tokio::time::sleep(held).await;
        }
    }
    sqlx::query("UPDATE worker_state SET last_prune_at = $1, last_prune_rows = $2 WHERE id = 1")
        .bind(now)
        .bind(i64::try_from(pruned.rows()).unwrap_or(i64::MAX))
        .execute(pool)
        .await
        .context("Failed to record the prune")?;
    Ok(pruned)
}

/// `now` minus `age` in ms, or `None` for an age of 0 (keep forever).
fn cutoff(now: i64, age: Duration) -> Option<i64> {
    let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    (age > 0).then(|| now.saturating_sub(age))
}

/// Deletes up to `limit` rows of `target` older than `before` in one transaction, adds them to
/// `pruned` and returns how many rows it deleted (fewer than `limit` when none are left, or
/// when another replica holds the rest: its own batches take those).
async fn batch(
    pool: &PgPool,
    target: Target,
    before: i64,
    limit: u64,
    now: i64,
    pruned: &mut Pruned,
) -> anyhow::Result<u64> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin a prune batch")?;
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

/// The oldest rows of `state`, locked: their attempt logs first (counted; the foreign key would
/// cascade them anyway), the emails of those attempted and not delivered, then the rows. The
/// locks keep the rows in `state` until the commit, so what is remembered is what is deleted.
async fn outbox_batch(
    conn: &mut PgConnection,
    state: RowState,
    before: i64,
    limit: u64,
    now: i64,
    pruned: &mut Pruned,
) -> anyhow::Result<u64> {
    let ids: Vec<i64> = sqlx::query_scalar(OLD_ROWS)
        .bind(state.as_str())
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .context("Failed to find old outbox rows")?;
    if ids.is_empty() {
        return Ok(0);
    }
    pruned.attempts += execute(conn, DELETE_ATTEMPTS, &ids, None).await?;
    pruned.attempted_emails += execute(conn, REMEMBER_ATTEMPTED, &ids, Some(now)).await?;
    let deleted = execute(conn, DELETE_ROWS, &ids, None).await?;
    pruned.outbox += deleted;
    Ok(deleted)
}

async fn delete_old(
    conn: &mut PgConnection,
    sql: &'static str,
    before: i64,
    limit: u64,
) -> anyhow::Result<u64> {
    Ok(sqlx::query(sql)
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(conn)
        .await
        .context("Failed to delete old rows")?
        .rows_affected())
}

async fn execute(
    conn: &mut PgConnection,
    sql: &'static str,
    ids: &[i64],
    now: Option<i64>,
) -> anyhow::Result<u64> {
    let mut query = sqlx::query(sql).bind(ids);
    if let Some(now) = now {
        query = query.bind(now);
    }
    Ok(query
        .execute(conn)
        .await
        .context("Failed to prune a batch of outbox rows")?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prune batch runs every few minutes beside ingest: a scan of the outbox (or of the
    /// attempt log, refused items or audit trail) would make the batch, and the counter row
    /// locks it holds, last as long as the table is big.
    #[tokio::test]
    async fn a_prune_batch_reads_only_indexes() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // Statistics of realistic tables: on empty ones, PostgreSQL would as soon read a batch's
        // ids through a state index as through the primary key, or hash the whole table.
        sqlx::query(
            "INSERT INTO outbox (source, event_id, email, payload, state, attempts, next_attempt_at,
                                 received_at, updated_at)
             SELECT 'hubspot', 'e' || i, 'u' || i || '@x.com', '{}',
                    (ARRAY['delivered', 'failed', 'cancelled', 'queued'])[1 + i % 4], 1, 0, i, i
             FROM generate_series(1, 20000) AS i",
        )
        .execute(&pool)
        .await
        .expect("rows");
        for sql in [
            "INSERT INTO refused (source, reason, field, refused_at)
             SELECT 'hubspot', 'missing_email', 'email', i FROM generate_series(1, 20000) AS i",
            "INSERT INTO admin_audit (at, action, affected)
             SELECT i, 'retry', 1 FROM generate_series(1, 20000) AS i",
            "ANALYZE outbox, refused, admin_audit",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        let ids = "'{1,2,3}'::BIGINT[]";
        for (sql, index, table) in [
            (
                OLD_ROWS
                    .replace("$1", "'delivered'")
                    .replace("$2", "5")
                    .replace("$3", "100"),
                "outbox_ended",
                "outbox",
            ),
            (
                DELETE_ATTEMPTS.replace("$1", ids),
                "delivery_attempts_outbox",
                "delivery_attempts",
            ),
            (
                REMEMBER_ATTEMPTED.replace("$1", ids).replace("$2", "5"),
                "outbox_pkey",
                "outbox",
            ),
            (DELETE_ROWS.replace("$1", ids), "outbox_pkey", "outbox"),
            (
                DELETE_REFUSED.replace("$1", "5").replace("$2", "100"),
                "refused_at",
                "refused",
            ),
            (
                DELETE_AUDIT.replace("$1", "5").replace("$2", "100"),
                "admin_audit_at",
                "admin_audit",
            ),
        ] {
            let detail = super::super::query_plan(&pool, &sql).await;
            assert!(
                detail
                    .iter()
                    .any(|d| d.contains(&format!("using {index} on {table}"))
                        || d.contains(&format!("Bitmap Index Scan on {index}"))),
                "{sql}: {detail:?}"
            );
            assert!(
                !detail.iter().any(|d| d.contains("Seq Scan")),
                "{sql}: {detail:?}"
            );
            assert!(
                !detail.iter().any(|d| d.contains("Sort")),
                "{sql}: {detail:?}"
            );
        }
    }

    fn policy(batch_rows: usize) -> RetentionSettings {
        let second = Duration::from_secs(1);
        RetentionSettings {
            delivered: second,
            failed: second,
            cancelled: second,
            refused: second,
            audit: second,
            every: second,
            batch_rows,
        }
    }

    /// What the rules keep and remember, on rows written straight into a migrated database (the
    /// attempt logs reference the rows), in batches of two. Unlike SQLite's, the newest row goes
    /// too: PostgreSQL never hands its id to another row.
    #[tokio::test]
    async fn pruning_keeps_the_ledger_the_waiting_rows_and_the_emails_a_create_may_have_reached() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // (state, attempts, email), all ended at 0.
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
                 VALUES ('contacts', $1, $2, 'rec', '{}', $3, $4, 0, 0, 0) RETURNING id",
            )
            .bind(format!("e{n}"))
            .bind(email)
            .bind(state)
            .bind(attempts as i64)
            .fetch_one(&pool)
            .await
            .expect("row");
            if attempts > 0 {
                sqlx::query(
                    "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, outcome)
                     VALUES ($1, 1, 0, 1, 'retry')",
                )
                .bind(id)
                .execute(&pool)
                .await
                .expect("attempt");
            }
        }
        for sql in [
            "INSERT INTO guest_ledger VALUES ('org', 'd1@x.com', 'g1', 2, 'created', 0)",
            "INSERT INTO refused (source, reason, field, refused_at) VALUES ('hubspot', 'missing_email', 'email', 0), ('hubspot', 'missing_email', 'email', 0), ('hubspot', 'missing_email', 'email', 20000)",
            "INSERT INTO admin_audit (at, action, affected) VALUES (0, 'retry', 1), (0, 'cancel', 1), (20000, 'retry', 1)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }

        let pruned = prune(&pool, 10_000, &policy(2)).await.expect("prune");

        assert_eq!(
            (pruned.outbox, pruned.attempts, pruned.refused, pruned.audit),
            (7, 6, 2, 2),
            "{pruned:?}"
        );
        assert_eq!(
            pruned.batches, 6,
            "two per batch: d1+d2, d3, f+f, c+c, refused, audit"
        );
        assert_eq!(pruned.wal_truncated, None);
        let left: Vec<String> = sqlx::query_scalar("SELECT email FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
        assert_eq!(left, ["q@x.com"], "the waiting row kept");
        let remembered: Vec<String> =
            sqlx::query_scalar("SELECT email FROM attempted_emails ORDER BY email")
                .fetch_all(&pool)
                .await
                .expect("emails");
        assert_eq!(remembered, ["c@x.com", "f@x.com"]);
        assert_eq!(pruned.attempted_emails, 2);
        let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_attempts")
            .fetch_one(&pool)
            .await
            .expect("attempts");
        assert_eq!(attempts, 0);
        let counted: i64 = sqlx::query_scalar("SELECT sum(n)::BIGINT FROM outbox_counts")
            .fetch_one(&pool)
            .await
            .expect("counts");
        assert_eq!(counted, 1, "the triggers kept the counts");
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
        assert_eq!(recorded, (Some(10_000), Some(11)));
        let refused_left: i64 = sqlx::query_scalar("SELECT sum(n)::BIGINT FROM refused_counts")
            .fetch_one(&pool)
            .await
            .expect("refused counts");
        assert_eq!(refused_left, 1, "the recent refusal kept");
        let audit_left: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_audit")
            .fetch_one(&pool)
            .await
            .expect("audit");
        assert_eq!(audit_left, 1, "the recent audit line kept");
    }

    /// Two replicas pruning at once delete, count and remember each row once: a batch skips the
    /// rows the other's batch holds.
    #[tokio::test]
    async fn concurrent_prunes_share_the_rows() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO outbox (source, event_id, email, payload, state, attempts, next_attempt_at,
                                 received_at, updated_at)
             SELECT 'contacts', 'e' || i, 'u' || i || '@x.com', '{}', 'failed', 1, 0, 0, 0
             FROM generate_series(1, 500) AS i",
        )
        .execute(&pool)
        .await
        .expect("rows");
        let policy = policy(7);
        let (a, b) = tokio::join!(prune(&pool, 10_000, &policy), prune(&pool, 10_000, &policy));
        let (a, b) = (a.expect("prune"), b.expect("prune"));
        assert_eq!(a.outbox + b.outbox, 500, "{a:?} {b:?}");
        assert_eq!(a.attempted_emails + b.attempted_emails, 500, "{a:?} {b:?}");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("left");
        assert_eq!(left, 0);
    }

    /// A failed row an operator's retry holds is skipped, not deleted from under the retry.
    #[tokio::test]
    async fn a_row_being_retried_is_left_alone() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (source, email, payload, state, attempts, next_attempt_at,
                                 received_at, updated_at)
             VALUES ('contacts', 'r@x.com', '{}', 'failed', 1, 0, 0, 0) RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .expect("row");
        let mut retry = pool.begin().await.expect("begin");
        sqlx::query("UPDATE outbox SET state = 'queued', updated_at = 20000 WHERE id = $1")
            .bind(id)
            .execute(&mut *retry)
            .await
            .expect("retry");
        let pruned = prune(&pool, 10_000, &policy(10)).await.expect("prune");
        retry.commit().await.expect("commit");
        assert_eq!((pruned.outbox, pruned.attempted_emails), (0, 0));
        let state: String = sqlx::query_scalar("SELECT state FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row kept");
        assert_eq!(state, "queued");
    }

    #[test]
    fn an_age_of_zero_keeps_forever() {
        assert_eq!(cutoff(10_000, Duration::ZERO), None);
        assert_eq!(cutoff(10_000, Duration::from_secs(3)), Some(7_000));
        assert_eq!(cutoff(10_000, Duration::MAX), Some(10_000 - i64::MAX));
    }
}
