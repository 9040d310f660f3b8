//! The ops console's SQL: the per-hour activity its chart draws (one index range per hour), how
//! many rows a bulk change would move (the bulk UPDATE's own row choice, counted), and its login
//! sessions.

use anyhow::Context;
use sqlx::{AssertSqlSafe, SqlitePool};

use super::admin::{bind, change_sql, select};
use crate::console::{HourCounts, StoredSession};
use crate::ops::deliveries::{DeliveryFilter, RowAction};

const HOUR_MS: i64 = 3_600_000;

/// One row per hour from ?1 (inclusive) to ?2 (exclusive): events accepted by `received_at`,
/// rows delivered by when they became delivered (`updated_at` of a delivered row). Each count is
/// a range of a covering index, so an hour costs what it holds, never what the outbox holds.
/// The OR chain repeats the `outbox_ended` index's WHERE so SQLite may use it.
const HOURLY: &str = "WITH RECURSIVE hours(h) AS (
         SELECT ?1 WHERE ?1 < ?2
         UNION ALL SELECT h + ?3 FROM hours WHERE h + ?3 < ?2)
     SELECT h AS hour_start,
            (SELECT count(*) FROM outbox INDEXED BY outbox_received
              WHERE received_at >= h AND received_at < h + ?3) AS accepted,
            (SELECT count(*) FROM outbox INDEXED BY outbox_ended
              WHERE (state = 'delivered' OR state = 'failed' OR state = 'cancelled')
                AND state = 'delivered'
                AND updated_at >= h AND updated_at < h + ?3) AS delivered
     FROM hours";

pub(super) async fn hourly_activity(
    pool: &SqlitePool,
    since: i64,
    until: i64,
) -> anyhow::Result<Vec<HourCounts>> {
    let since = since - since.rem_euclid(HOUR_MS);
    let mut hours: Vec<HourCounts> = sqlx::query_as(HOURLY)
        .bind(since)
        .bind(until)
        .bind(HOUR_MS)
        .fetch_all(pool)
        .await
        .context("Failed to read the hourly activity")?;
    // A recursive CTE yields its rows in order; sorting 48 rows here keeps that off the plan.
    hours.sort_by_key(|h| h.hour_start);
    Ok(hours)
}

/// The rows [`super::admin`]'s bulk UPDATE would choose, counted instead of changed.
fn count_sql(filter: &DeliveryFilter, action: RowAction) -> String {
    let (_, states) = change_sql(action);
    format!(
        "SELECT count(*) FROM outbox WHERE state IN {states} AND id IN ({} LIMIT CAST(?8 AS INTEGER))",
        select("id", filter, false)
    )
}

pub(super) async fn count_deliveries(
    pool: &SqlitePool,
    filter: &DeliveryFilter,
    action: RowAction,
    limit: usize,
) -> anyhow::Result<u64> {
    let sql = count_sql(filter, action);
    let (n,): (i64,) = bind(sqlx::query_as(AssertSqlSafe(sql)), filter, None, limit, 0)
        .fetch_one(pool)
        .await
        .context("Failed to count deliveries")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Stores a new session, deleting the expired ones first (in the same transaction).
pub(super) async fn create_session(
    pool: &SqlitePool,
    session: &StoredSession,
    now: i64,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("Failed to begin a login")?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to delete expired console sessions")?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(&session.id_hash[..])
    .bind(&session.csrf)
    .bind(session.created_at)
    .bind(session.expires_at)
    .execute(&mut *tx)
    .await
    .context("Failed to store a console session")?;
    tx.commit().await.context("Failed to commit a login")?;
    Ok(())
}

/// The session with this id hash, unless it expired by `now`.
pub(super) async fn session(
    pool: &SqlitePool,
    id_hash: &[u8],
    now: i64,
) -> anyhow::Result<Option<StoredSession>> {
    sqlx::query_as(
        "SELECT id_hash, csrf, created_at, expires_at FROM console_sessions
         WHERE id_hash = ?1 AND expires_at > ?2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .context("Failed to read a console session")
}

pub(super) async fn delete_session(pool: &SqlitePool, id_hash: &[u8]) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = ?1")
        .bind(id_hash)
        .execute(pool)
        .await
        .context("Failed to delete a console session")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::RowState;
    use crate::outbox::sqlite::{memory_pool, query_plan};

    /// The chart is drawn on every overview: each hour must be a range of its index, not a scan
    /// of the outbox, which keeps every delivered row until retention prunes it.
    #[tokio::test]
    async fn the_hourly_activity_reads_one_index_range_per_series() {
        let plan = query_plan(HOURLY).await;
        for index in ["outbox_received", "outbox_ended"] {
            assert!(
                plan.iter().any(
                    |d| d.starts_with(&format!("SEARCH outbox USING COVERING INDEX {index} ("))
                ),
                "{index}: {plan:?}"
            );
        }
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN outbox")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
    }

    #[tokio::test]
    async fn the_bulk_count_chooses_its_rows_through_the_index() {
        let filter = DeliveryFilter {
            state: Some(RowState::Failed),
            ..DeliveryFilter::default()
        };
        let plan = query_plan(&count_sql(&filter, RowAction::Retry)).await;
        assert!(
            plan.iter().any(|d| d.contains("outbox_state_received")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN outbox")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn hours_are_whole_and_empty_hours_count_zero() {
        let pool = memory_pool().await;
        let t0 = 100 * HOUR_MS;
        for (received, state, updated) in [
            (t0 + 5, "delivered", t0 + HOUR_MS + 7),
            (t0 + 9, "failed", t0 + 10),
            (t0 + 2 * HOUR_MS, "queued", t0 + 2 * HOUR_MS),
            (t0 - 1, "delivered", t0 - 1),
        ] {
            sqlx::query(
                "INSERT INTO outbox (source, email, payload, state, next_attempt_at, received_at,
                                     updated_at) VALUES ('contacts', 'a@b.c', '{}', ?1, 0, ?2, ?3)",
            )
            .bind(state)
            .bind(received)
            .bind(updated)
            .execute(&pool)
            .await
            .expect("row");
        }
        let hours = hourly_activity(&pool, t0 + 30, t0 + 3 * HOUR_MS)
            .await
            .expect("hours");
        let got: Vec<(i64, i64, i64)> = hours
            .iter()
            .map(|h| (h.hour_start, h.accepted, h.delivered))
            .collect();
        assert_eq!(
            got,
            vec![(t0, 2, 0), (t0 + HOUR_MS, 0, 1), (t0 + 2 * HOUR_MS, 1, 0)]
        );
    }
}
