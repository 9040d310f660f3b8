//! The figures `/status` shows, read with index-only queries so their cost does not grow with
//! the outbox (delivered rows are kept forever).

use anyhow::Context;
use serde::Serialize;
use sqlx::SqlitePool;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct StateCounts {
    pub queued: i64,
    pub in_flight: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub counts: StateCounts,
    /// When the oldest event not yet delivered or failed arrived (ms since epoch).
    pub oldest_waiting_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub paused_reason: Option<String>,
    pub rate_limited_until: Option<i64>,
}

pub async fn snapshot(pool: &SqlitePool) -> anyhow::Result<Snapshot> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to open a read transaction")?;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, n FROM outbox_counts")
        .fetch_all(&mut *tx)
        .await
        .context("Failed to read outbox counts")?;
    let mut counts = StateCounts::default();
    for (state, n) in rows {
        match state.as_str() {
            "queued" => counts.queued = n,
            "in_flight" => counts.in_flight = n,
            "retrying" => counts.retrying = n,
            "delivered" => counts.delivered = n,
            "failed" => counts.failed = n,
            other => tracing::warn!(state = other, "Unknown outbox state in counts"),
        }
    }
    let oldest_waiting_at: Option<i64> = sqlx::query_scalar(OLDEST_WAITING)
        .fetch_one(&mut *tx)
        .await
        .context("Failed to read the oldest waiting event")?;
    let worker: WorkerRow = sqlx::query_as(
        "SELECT heartbeat_at, last_delivered_at, last_error, last_error_at, paused_reason,
                rate_limited_until
         FROM worker_state WHERE id = 1",
    )
    .fetch_one(&mut *tx)
    .await
    .context("Failed to read the worker state")?;
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
    })
}

type WorkerRow = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Must match the `outbox_waiting` partial index's WHERE clause word for word to use it.
const OLDEST_WAITING: &str = "SELECT min(received_at) FROM outbox
     WHERE state IN ('queued', 'in_flight', 'retrying')";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status query must be answered from an index or a tiny table: a `SCAN outbox` would
    /// make /status slower with every delivered row.
    #[tokio::test]
    async fn status_queries_never_scan_the_outbox() {
        let detail = crate::outbox::query_plan(OLDEST_WAITING).await;
        assert!(
            detail
                .iter()
                .all(|d| !d.starts_with("SCAN outbox") || d.contains("INDEX")),
            "{detail:?}"
        );
        assert!(
            detail.iter().any(|d| d.contains("outbox_waiting")),
            "{detail:?}"
        );
    }
}
