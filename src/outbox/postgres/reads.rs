//! What operators read: the figures `/status` shows (index-only queries and tiny tables, so
//! their cost does not grow with the outbox, whose delivered rows are kept), one row with its
//! attempt log, and a ledger entry.

use anyhow::Context;
use sqlx::PgPool;

use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::outbox::RowState;
use crate::status::{RefusedCount, Snapshot, StateCounts};

pub(super) async fn snapshot(pool: &PgPool) -> anyhow::Result<Snapshot> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to open a read transaction")?;
    // One snapshot for every figure (as SQLite's read transaction): READ COMMITTED would take
    // one per statement, and the counts could disagree with the oldest waiting row.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("Failed to open a read transaction")?;
    let rows: Vec<(RowState, i64)> = sqlx::query_as("SELECT state, n FROM outbox_counts")
        .fetch_all(&mut *tx)
        .await
        .context("Failed to read outbox counts")?;
    let mut counts = StateCounts::default();
    for (state, n) in rows {
        let count = match state {
            RowState::Queued => &mut counts.queued,
            RowState::InFlight => &mut counts.in_flight,
            RowState::Retrying => &mut counts.retrying,
            RowState::Delivered => &mut counts.delivered,
            RowState::Failed => &mut counts.failed,
            RowState::Cancelled => &mut counts.cancelled,
        };
        *count = n;
    }
    let oldest_waiting_at: Option<i64> = sqlx::query_scalar(OLDEST_WAITING)
        .fetch_one(&mut *tx)
        .await
        .context("Failed to read the oldest waiting event")?;
    let worker: WorkerRow = sqlx::query_as(
        "SELECT heartbeat_at, last_delivered_at, last_error, last_error_at, paused_reason,
                rate_limited_until, last_prune_at, last_prune_rows
         FROM worker_state WHERE id = 1",
    )
    .fetch_one(&mut *tx)
    .await
    .context("Failed to read the worker state")?;
    let refused: Vec<RefusedCount> = sqlx::query_as(
        "SELECT source, reason, n FROM refused_counts WHERE n > 0 ORDER BY source, reason",
    )
    .fetch_all(&mut *tx)
    .await
    .context("Failed to read refused counts")?;
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut *tx)
        .await
        .context("Failed to read the database size")?;
    let waiting = counts.queued + counts.in_flight + counts.retrying;
    let pacing = super::pacing::snapshot(&mut tx, crate::time::now_ms(), waiting).await?;
    tx.commit()
        .await
        .context("Failed to close the read transaction")?;
    Ok(Snapshot {
        counts,
        oldest_waiting_at,
        heartbeat_at: worker.0,
        last_delivered_at: worker.1,
        last_error: worker.2,
        last_error_at: worker.3,
        paused_reason: worker.4,
        rate_limited_until: worker.5,
        refused,
        database_bytes: Some(database_bytes),
        last_prune_at: worker.6,
        last_prune_rows: worker.7,
        pacing,
    })
}

pub(super) async fn delivery(
    pool: &PgPool,
    id: i64,
) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>> {
    // Two statements, each its own snapshot: an attempt recorded between them may show in the
    // log and not yet on the row (as on SQLite, which reads them apart too).
    let row: Option<DeliveryView> = sqlx::query_as(
        "SELECT id, source, event_id, email, crm_record, state, attempts, next_attempt_at, lease_until,
                guest_id, last_error, received_at, delivered_at, retried_at
         FROM outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read a delivery")?;
    let Some(row) = row else { return Ok(None) };
    let attempts = sqlx::query_as(
        "SELECT attempt, started_at, duration_ms, http_status, outcome, error
         FROM delivery_attempts WHERE outbox_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("Failed to read a delivery's attempts")?;
    Ok(Some((row, attempts)))
}

pub(super) async fn ledger_entry(
    pool: &PgPool,
    org_id: &str,
    email: &str,
) -> anyhow::Result<Option<LedgerEntry>> {
    sqlx::query_as(
        "SELECT org_id, email, guest_id, outbox_id, learned_by, created_at
         FROM guest_ledger WHERE org_id = $1 AND email = $2",
    )
    .bind(org_id)
    .bind(email)
    .fetch_optional(pool)
    .await
    .context("Failed to read the guest ledger")
}

type WorkerRow = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Its WHERE implies the `outbox_waiting` partial index's, so the index answers it.
const OLDEST_WAITING: &str = "SELECT min(received_at) FROM outbox
     WHERE state IN ('queued', 'in_flight', 'retrying')";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::{AttemptClass, LearnedBy};

    /// Every status query must be answered from an index or a tiny table: a `Seq Scan on
    /// outbox` would make /status slower with every delivered row. (Sequential scans are off on
    /// the connection: with an empty table PostgreSQL would rightly prefer one.)
    #[tokio::test]
    async fn status_queries_never_scan_the_outbox() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let detail = super::super::query_plan(&pool, OLDEST_WAITING).await;
        assert!(
            !detail.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{detail:#?}"
        );
        assert!(
            detail.iter().any(|d| d.contains("outbox_waiting")),
            "{detail:#?}"
        );
    }

    #[tokio::test]
    async fn the_snapshot_counts_rows_and_reads_the_worker_state() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let empty = snapshot(&pool).await.expect("snapshot");
        assert_eq!(empty.counts, StateCounts::default());
        assert_eq!(empty.oldest_waiting_at, None);
        assert!(empty.database_bytes.is_some_and(|bytes| bytes > 0));

        for (state, received_at) in [("queued", 30), ("retrying", 20), ("delivered", 10)] {
            sqlx::query(
                "INSERT INTO outbox (source, email, payload, state, next_attempt_at, received_at, updated_at)
                 VALUES ('canonical', $1, '{}', $2, 0, $3, $3)",
            )
            .bind(format!("{state}@example.com"))
            .bind(state)
            .bind(received_at)
            .execute(&pool)
            .await
            .expect("insert");
        }
        sqlx::query(
            "UPDATE worker_state SET heartbeat_at = 5, paused_reason = 'paused', last_prune_rows = 2
             WHERE id = 1",
        )
        .execute(&pool)
        .await
        .expect("worker state");
        let status = snapshot(&pool).await.expect("snapshot");
        assert_eq!(
            status.counts,
            StateCounts {
                queued: 1,
                retrying: 1,
                delivered: 1,
                ..StateCounts::default()
            }
        );
        assert_eq!(status.oldest_waiting_at, Some(20));
        assert_eq!(status.heartbeat_at, Some(5));
        assert_eq!(status.paused_reason.as_deref(), Some("paused"));
        assert_eq!(status.last_prune_rows, Some(2));
        assert_eq!(status.pacing.waiting, 2);
    }

    #[tokio::test]
    async fn a_delivery_reads_with_its_attempts_and_the_ledger_entry() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        assert!(delivery(&pool, 1).await.expect("read").is_none());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (source, event_id, email, payload, state, attempts, next_attempt_at,
                                 guest_id, received_at, updated_at, delivered_at)
             VALUES ('canonical', 'e1', 'a@example.com', '{}', 'delivered', 2, 0, 'g1', 1, 9, 9)
             RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .expect("insert");
        for (attempt, outcome, status) in [(1, "retry", Some(503_i64)), (2, "delivered", None)] {
            sqlx::query(
                "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, http_status, outcome)
                 VALUES ($1, $2, $2, 5, $3, $4)",
            )
            .bind(id)
            .bind(attempt as i64)
            .bind(status)
            .bind(outcome)
            .execute(&pool)
            .await
            .expect("attempt");
        }
        sqlx::query(
            "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
             VALUES ('org', 'a@example.com', 'g1', $1, 'created', 9)",
        )
        .bind(id)
        .execute(&pool)
        .await
        .expect("ledger");

        let (row, attempts) = delivery(&pool, id).await.expect("read").expect("row");
        assert_eq!(row.state, RowState::Delivered);
        assert_eq!(row.event_id.as_deref(), Some("e1"));
        assert_eq!(row.guest_id.as_deref(), Some("g1"));
        assert_eq!(row.delivered_at, Some(9));
        let log: Vec<(i64, AttemptClass, Option<i64>)> = attempts
            .iter()
            .map(|a| (a.attempt, a.outcome, a.http_status))
            .collect();
        assert_eq!(
            log,
            vec![
                (1, AttemptClass::Retry, Some(503)),
                (2, AttemptClass::Delivered, None)
            ]
        );

        let entry = ledger_entry(&pool, "org", "a@example.com")
            .await
            .expect("read")
            .expect("entry");
        assert_eq!(
            (entry.guest_id.as_str(), entry.outbox_id, entry.learned_by),
            ("g1", id, LearnedBy::Created)
        );
        assert!(
            ledger_entry(&pool, "other", "a@example.com")
                .await
                .expect("read")
                .is_none()
        );
    }
}
