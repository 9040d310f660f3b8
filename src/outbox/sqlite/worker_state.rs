//! The one-row worker state every worker shares: the delivery gate (paused, rate limited) and
//! the heartbeat `/status` shows.

use anyhow::Context;
use sqlx::SqlitePool;

use crate::outbox::Gate;

pub(super) async fn gate(pool: &SqlitePool) -> anyhow::Result<Gate> {
    sqlx::query_as("SELECT paused_reason, rate_limited_until FROM worker_state WHERE id = 1")
        .fetch_one(pool)
        .await
        .context("Failed to read the worker state")
}

pub(super) async fn set_paused(pool: &SqlitePool, reason: Option<&str>) -> anyhow::Result<()> {
    sqlx::query("UPDATE worker_state SET paused_reason = ?1 WHERE id = 1")
        .bind(reason)
        .execute(pool)
        .await
        .context("Failed to record the paused state")?;
    Ok(())
}

pub(super) async fn heartbeat(pool: &SqlitePool, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE worker_state SET heartbeat_at = ?1 WHERE id = 1")
        .bind(now)
        .execute(pool)
        .await
        .context("Failed to write the worker heartbeat")?;
    Ok(())
}
