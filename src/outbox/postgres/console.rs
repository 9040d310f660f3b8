//! The ops console's SQL on PostgreSQL: the per-hour activity its chart draws (one index range
//! per hour), how many rows a bulk change would move (the bulk UPDATE's own row choice,
//! counted), and its login sessions (by the BYTEA SHA-256 of their id).

use anyhow::Context;
use sqlx::{AssertSqlSafe, PgPool};

use super::admin::{bind, change_sql, select};
use crate::console::{HourCounts, StoredSession};
use crate::ops::deliveries::{DeliveryFilter, RowAction};

const HOUR_MS: i64 = 3_600_000;

/// One row per hour from $1 (inclusive) to $2 (exclusive), hours of $3 ms (integer arithmetic
/// on ms, as on SQLite): events accepted by `received_at`, rows delivered by when they became
/// delivered (`updated_at` of a delivered row). Each count is an index-only range of its index,
/// so an hour costs what it holds, never what the outbox holds. The IN list repeats the
/// `outbox_ended` index's WHERE, so the planner sees the partial index applies.
const HOURLY: &str = "WITH RECURSIVE hours(h) AS (
         SELECT $1::BIGINT WHERE $1::BIGINT < $2::BIGINT
         UNION ALL SELECT h + $3::BIGINT FROM hours WHERE h + $3::BIGINT < $2::BIGINT)
     SELECT h AS hour_start,
            (SELECT count(*) FROM outbox
              WHERE received_at >= h AND received_at < h + $3::BIGINT) AS accepted,
            (SELECT count(*) FROM outbox
              WHERE state IN ('delivered', 'failed', 'cancelled') AND state = 'delivered'
                AND updated_at >= h AND updated_at < h + $3::BIGINT) AS delivered
     FROM hours";

pub(super) async fn hourly_activity(
    pool: &PgPool,
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
        "SELECT count(*) FROM outbox WHERE state IN {states} AND id IN ({} LIMIT $8)",
        select("id", filter, false)
    )
}

pub(super) async fn count_deliveries(
    pool: &PgPool,
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

/// Stores a new session, deleting the expired ones first (in the same transaction). Replicas
/// may log in at once: the DELETE only takes expired rows and the id hash is new, so two logins
/// at worst delete the same expired row (one waits for the other, then finds it gone).
pub(super) async fn create_session(
    pool: &PgPool,
    session: &StoredSession,
    now: i64,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("Failed to begin a login")?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to delete expired console sessions")?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
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
    pool: &PgPool,
    id_hash: &[u8],
    now: i64,
) -> anyhow::Result<Option<StoredSession>> {
    sqlx::query_as(
        "SELECT id_hash, csrf, created_at, expires_at FROM console_sessions
         WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .context("Failed to read a console session")
}

pub(super) async fn delete_session(pool: &PgPool, id_hash: &[u8]) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await
        .context("Failed to delete a console session")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::admin::plans::plan;
    use super::*;
    use crate::outbox::RowState;

    /// The chart is drawn on every overview: each hour must be a range of its index, not a scan
    /// of the outbox, which keeps every delivered row until retention prunes it.
    #[tokio::test]
    async fn the_hourly_activity_reads_one_index_range_per_series() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // $1..$3 become 1, 2 and 'a@example.com' in `literal`: give the CTE numbers instead.
        let sql = HOURLY
            .replace("$1::BIGINT", "0")
            .replace("$2::BIGINT", "7200000")
            .replace("$3::BIGINT", "3600000");
        let plan = plan(&pool, &sql).await;
        for index in ["outbox_received", "outbox_ended"] {
            assert!(
                plan.iter()
                    .any(|d| d.contains(&format!("Index Only Scan using {index} on outbox"))),
                "{index}: {plan:?}"
            );
        }
        assert!(
            !plan.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("Sort")), "{plan:?}");
    }

    #[tokio::test]
    async fn the_bulk_count_chooses_its_rows_through_the_index() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let filter = DeliveryFilter {
            state: Some(RowState::Failed),
            ..DeliveryFilter::default()
        };
        let plan = plan(&pool, &count_sql(&filter, RowAction::Retry)).await;
        assert!(
            plan.iter().any(|d| d.contains("outbox_state_received")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn hours_are_whole_and_empty_hours_count_zero() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let t0 = 100 * HOUR_MS;
        for (received, state, updated) in [
            (t0 + 5, "delivered", t0 + HOUR_MS + 7),
            (t0 + 9, "failed", t0 + 10),
            (t0 + 2 * HOUR_MS, "queued", t0 + 2 * HOUR_MS),
            (t0 - 1, "delivered", t0 - 1),
        ] {
            sqlx::query(
                "INSERT INTO outbox (source, email, payload, state, next_attempt_at, received_at,
                                     updated_at) VALUES ('contacts', 'a@b.c', '{}', $1, 0, $2, $3)",
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
        assert!(
            hourly_activity(&pool, t0, t0)
                .await
                .expect("none")
                .is_empty()
        );
    }

    /// The count is the bulk change's own choice: its state guard and its limit.
    #[tokio::test]
    async fn the_bulk_count_counts_what_the_change_would_move() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        for (n, state) in ["failed", "failed", "failed", "queued"]
            .into_iter()
            .enumerate()
        {
            sqlx::query(
                "INSERT INTO outbox (source, email, payload, state, next_attempt_at, received_at,
                                     updated_at) VALUES ('hubspot', $1, '{}', $2, 0, $3, 0)",
            )
            .bind(format!("u{n}@x.com"))
            .bind(state)
            .bind(n as i64)
            .execute(&pool)
            .await
            .expect("row");
        }
        let failed = DeliveryFilter {
            state: Some(RowState::Failed),
            ..DeliveryFilter::default()
        };
        let queued = DeliveryFilter {
            state: Some(RowState::Queued),
            ..DeliveryFilter::default()
        };
        let count = |filter, action, limit| count_deliveries(&pool, filter, action, limit);
        assert_eq!(count(&failed, RowAction::Retry, 2).await.expect("count"), 2);
        assert_eq!(
            count(&failed, RowAction::Retry, 10).await.expect("count"),
            3
        );
        assert_eq!(
            count(&queued, RowAction::Retry, 10).await.expect("count"),
            0
        );
        assert_eq!(
            count(&queued, RowAction::Cancel, 10).await.expect("count"),
            1
        );
    }

    #[tokio::test]
    async fn a_session_is_found_until_it_expires_or_is_deleted() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let old = StoredSession {
            id_hash: vec![1; 32],
            csrf: "c1".into(),
            created_at: 0,
            expires_at: 100,
        };
        let new = StoredSession {
            id_hash: vec![2; 32],
            csrf: "c2".into(),
            created_at: 50,
            expires_at: 1_000,
        };
        create_session(&pool, &old, 0).await.expect("login");
        assert_eq!(
            session(&pool, &old.id_hash, 99)
                .await
                .expect("read")
                .map(|s| s.csrf),
            Some("c1".into())
        );
        assert!(
            session(&pool, &old.id_hash, 100)
                .await
                .expect("read")
                .is_none()
        );
        // A login deletes the expired ones.
        create_session(&pool, &new, 200).await.expect("login");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(left, 1);
        let found = session(&pool, &new.id_hash, 200)
            .await
            .expect("read")
            .expect("found");
        assert_eq!((found.id_hash, found.expires_at), (vec![2; 32], 1_000));
        delete_session(&pool, &new.id_hash).await.expect("logout");
        assert!(
            session(&pool, &new.id_hash, 200)
                .await
                .expect("read")
                .is_none()
        );
    }
}
