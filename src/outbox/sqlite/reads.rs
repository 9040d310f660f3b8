//! What operators read: the figures `/status` shows (index-only queries, so their cost does not
//! grow with the outbox, whose delivered rows are kept), one row with its attempt log, and a
//! ledger entry.

use anyhow::Context;
use sqlx::SqlitePool;

use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::outbox::RowState;
use crate::status::{RefusedCount, Snapshot, StateCounts};

pub(super) async fn snapshot(pool: &SqlitePool) -> anyhow::Result<Snapshot> {
    let mut tx = pool
        .begin()
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
    let database_bytes: i64 = sqlx::query_scalar(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    )
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
    pool: &SqlitePool,
    id: i64,
) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>> {
    let row: Option<DeliveryView> = sqlx::query_as(
        "SELECT id, source, event_id, email, crm_record, state, attempts, next_attempt_at, lease_until,
                guest_id, last_error, received_at, delivered_at, retried_at
         FROM outbox WHERE id = ?1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read a delivery")?;
    let Some(row) = row else { return Ok(None) };
    let attempts = sqlx::query_as(
        "SELECT attempt, started_at, duration_ms, http_status, outcome, error
         FROM delivery_attempts WHERE outbox_id = ?1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("Failed to read a delivery's attempts")?;
    Ok(Some((row, attempts)))
}

pub(super) async fn ledger_entry(
    pool: &SqlitePool,
    org_id: &str,
    email: &str,
) -> anyhow::Result<Option<LedgerEntry>> {
    sqlx::query_as(
        "SELECT org_id, email, guest_id, outbox_id, learned_by, created_at
         FROM guest_ledger WHERE org_id = ?1 AND email = ?2",
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

/// The least of three look-ups in `outbox_state_received`, one per waiting state.
const OLDEST_WAITING: &str = "SELECT min(t) FROM (
         SELECT min(received_at) AS t FROM outbox INDEXED BY outbox_state_received
         WHERE state = 'queued'
         UNION ALL
         SELECT min(received_at) FROM outbox INDEXED BY outbox_state_received
         WHERE state = 'in_flight'
         UNION ALL
         SELECT min(received_at) FROM outbox INDEXED BY outbox_state_received
         WHERE state = 'retrying')";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status query must be answered from an index or a tiny table: a `SCAN outbox` would
    /// make /status slower with every delivered row.
    #[tokio::test]
    async fn status_queries_never_scan_the_outbox() {
        let detail = crate::outbox::sqlite::query_plan(OLDEST_WAITING).await;
        assert!(
            detail
                .iter()
                .all(|d| !d.starts_with("SCAN outbox") || d.contains("INDEX")),
            "{detail:?}"
        );
        assert!(
            detail.iter().any(|d| d.contains("outbox_state_received")),
            "{detail:?}"
        );
    }
}
