//! The org-wide worker state every replica shares (the delivery gate: credentials pause,
//! Tallyfy's 429 hold; the latest heartbeat `/status` shows), and each replica's own heartbeat.

use anyhow::Context;
use sqlx::PgPool;

use crate::outbox::Gate;

pub(super) async fn gate(pool: &PgPool) -> anyhow::Result<Gate> {
    sqlx::query_as("SELECT paused_reason, rate_limited_until FROM worker_state WHERE id = 1")
        .fetch_one(pool)
        .await
        .context("Failed to read the worker state")
}

/// Pauses (or resumes) delivery for every replica: the row is shared.
pub(super) async fn set_paused(pool: &PgPool, reason: Option<&str>) -> anyhow::Result<()> {
    sqlx::query("UPDATE worker_state SET paused_reason = $1 WHERE id = 1")
        .bind(reason)
        .execute(pool)
        .await
        .context("Failed to record the paused state")?;
    Ok(())
}

/// This replica's heartbeat: its own row in `replicas` (started at its first beat), and the
/// org-wide `worker_state.heartbeat_at`, which only moves forward so it shows the latest beat
/// of any replica (one whose clock lags cannot set it back). Both in one transaction; the
/// upsert and the single-row update each lock only their row, so replicas beating at once
/// take turns on `worker_state` and never deadlock (every beat locks in the same order).
pub(super) async fn heartbeat(pool: &PgPool, replica: &str, now: i64) -> anyhow::Result<()> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin the worker heartbeat")?;
    sqlx::query(
        "INSERT INTO replicas (replica_id, started_at, heartbeat_at) VALUES ($1, $2, $2)
         ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
    )
    .bind(replica)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("Failed to write the replica heartbeat")?;
    sqlx::query(
        "UPDATE worker_state SET heartbeat_at = greatest(coalesce(heartbeat_at, 0), $1)
         WHERE id = 1",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("Failed to write the worker heartbeat")?;
    tx.commit()
        .await
        .context("Failed to commit the worker heartbeat")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_is_shared_and_paused_until_resumed() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        assert_eq!(gate(&pool).await.expect("gate"), Gate::default());
        set_paused(&pool, Some("401 from Tallyfy"))
            .await
            .expect("pause");
        assert_eq!(
            gate(&pool).await.expect("gate").paused_reason.as_deref(),
            Some("401 from Tallyfy")
        );
        set_paused(&pool, None).await.expect("resume");
        assert_eq!(gate(&pool).await.expect("gate"), Gate::default());
    }

    #[tokio::test]
    async fn each_replica_beats_and_the_shared_heartbeat_is_the_latest() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        heartbeat(&pool, "a", 1_000).await.expect("beat");
        heartbeat(&pool, "b", 3_000).await.expect("beat");
        heartbeat(&pool, "a", 2_000).await.expect("beat");
        let replicas: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT replica_id, started_at, heartbeat_at FROM replicas ORDER BY replica_id",
        )
        .fetch_all(&pool)
        .await
        .expect("replicas");
        assert_eq!(
            replicas,
            vec![
                ("a".to_owned(), 1_000, 2_000),
                ("b".to_owned(), 3_000, 3_000)
            ]
        );
        let shared: Option<i64> =
            sqlx::query_scalar("SELECT heartbeat_at FROM worker_state WHERE id = 1")
                .fetch_one(&pool)
                .await
                .expect("worker state");
        assert_eq!(shared, Some(3_000));
    }
}
