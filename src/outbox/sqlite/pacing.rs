//! The create budget in SQL: a sliding log of spends (`create_spends`), spent by one conditional
//! insert, and the one-row `create_budget` (the announced limit, Tallyfy's own cap hold).

use anyhow::Context;
use sqlx::{SqliteConnection, SqlitePool};

use crate::domain::pacing::{Budget, PacingLimit, PacingSnapshot, slot_at};

/// ?1 now, ?2 span, ?3 cap, ?4 the spending row. Inserts only while fewer than the cap still
/// count and Tallyfy's cap does not hold: check and spend in one write statement, which SQLite
/// runs under its write lock (another backend: a row lock on `create_budget`).
const SPEND: &str = "INSERT INTO create_spends (spent_at, outbox_id)
     SELECT ?1, ?4
     WHERE (SELECT count(*) FROM create_spends WHERE spent_at > ?1 - ?2) < ?3
       AND coalesce((SELECT exhausted_until FROM create_budget WHERE id = 1), 0) <= ?1";

/// ?1 now, ?2 span: spends that no longer count, deleted in the spend's transaction.
const FORGET: &str = "DELETE FROM create_spends WHERE spent_at <= ?1 - ?2";

/// ?1 now, ?2 span.
const COUNT: &str = "SELECT count(*) FROM create_spends WHERE spent_at > ?1 - ?2";

/// ?1 now, ?2 span, ?3 offset: the spend at that offset, oldest first.
const SPEND_AT: &str = "SELECT spent_at FROM create_spends WHERE spent_at > ?1 - ?2
     ORDER BY spent_at LIMIT 1 OFFSET CAST(?3 AS INTEGER)";

/// Spends one unit for `outbox_id`'s create at `now`, if one is left: `Ok(None)`, else when the
/// next may be spent.
pub(super) async fn spend(
    pool: &SqlitePool,
    now: i64,
    limit: PacingLimit,
    outbox_id: i64,
) -> anyhow::Result<Option<i64>> {
    let mut tx = pool.begin().await.context("Failed to begin a spend")?;
    // A write first: the transaction holds the write lock from here to its commit.
    sqlx::query(FORGET)
        .bind(now)
        .bind(limit.span_ms())
        .execute(&mut *tx)
        .await
        .context("Failed to forget old spends")?;
    let spent = sqlx::query(SPEND)
        .bind(now)
        .bind(limit.span_ms())
        .bind(i64::from(limit.max_creates))
        .bind(outbox_id)
        .execute(&mut *tx)
        .await
        .context("Failed to spend from the create budget")?
        .rows_affected()
        == 1;
    let next = if spent {
        None
    } else {
        let budget = read(&mut tx, now, limit).await?;
        Some(budget.next_create_at(limit, now))
    };
    tx.commit().await.context("Failed to commit a spend")?;
    Ok(next)
}

/// The budget at `now` under `limit`.
pub(super) async fn budget(
    pool: &SqlitePool,
    now: i64,
    limit: PacingLimit,
) -> anyhow::Result<Budget> {
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to read the create budget")?;
    read(&mut conn, now, limit).await
}

async fn read(conn: &mut SqliteConnection, now: i64, limit: PacingLimit) -> anyhow::Result<Budget> {
    let spent: i64 = sqlx::query_scalar(COUNT)
        .bind(now)
        .bind(limit.span_ms())
        .fetch_one(&mut *conn)
        .await
        .context("Failed to count spends")?;
    let exhausted_until = exhausted_until(conn).await?;
    let next_freed_by = match Budget::free_offset(spent, limit, 0) {
        Some(offset) if !limit.unlimited() => spend_at(conn, now, limit, offset).await?,
        _ => None,
    };
    Ok(Budget {
        spent,
        exhausted_until,
        next_freed_by,
    })
}

async fn exhausted_until(conn: &mut SqliteConnection) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar("SELECT exhausted_until FROM create_budget WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .context("Failed to read the create budget")
}

async fn spend_at(
    conn: &mut SqliteConnection,
    now: i64,
    limit: PacingLimit,
    offset: i64,
) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar(SPEND_AT)
        .bind(now)
        .bind(limit.span_ms())
        .bind(offset)
        .fetch_optional(&mut *conn)
        .await
        .context("Failed to read a spend")
}

/// Records the limit the worker runs with, for `/status` of every process.
pub(super) async fn announce(pool: &SqlitePool, limit: PacingLimit) -> anyhow::Result<()> {
    sqlx::query("UPDATE create_budget SET max_creates = ?1, window_ms = ?2 WHERE id = 1")
        .bind(i64::from(limit.max_creates))
        .bind(limit.window_ms)
        .execute(pool)
        .await
        .context("Failed to record the create budget's limit")?;
    Ok(())
}

/// Tallyfy said its hourly cap is reached: nothing is spent before `until` (recorded with the
/// attempt's row, in its transaction).
pub(super) async fn empty_until(tx: &mut SqliteConnection, until: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE create_budget SET exhausted_until = max(coalesce(exhausted_until, 0), ?1) WHERE id = 1",
    )
    .bind(until)
    .execute(&mut *tx)
    .await
    .context("Failed to empty the create budget")?;
    Ok(())
}

/// What `/status` shows of the budget, `waiting` rows ahead, read inside the snapshot's
/// transaction with the limit last announced.
pub(super) async fn snapshot(
    conn: &mut SqliteConnection,
    now: i64,
    waiting: i64,
) -> anyhow::Result<PacingSnapshot> {
    let (max_creates, window_ms): (i64, i64) =
        sqlx::query_as("SELECT max_creates, window_ms FROM create_budget WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .context("Failed to read the create budget")?;
    let limit = PacingLimit {
        max_creates: u32::try_from(max_creates).unwrap_or(0),
        window_ms,
    };
    let budget = read(conn, now, limit).await?;
    let last_offset = if limit.unlimited() || waiting <= 0 {
        None
    } else {
        Budget::free_offset(
            budget.spent,
            limit,
            (waiting - 1) % i64::from(limit.max_creates),
        )
    };
    let last_freed_by = match last_offset {
        Some(offset) => spend_at(conn, now, limit, offset).await?,
        None => None,
    };
    Ok(PacingSnapshot {
        limit,
        budget,
        now,
        waiting,
        drained_at: slot_at(limit, &budget, now, waiting, |_| last_freed_by),
        next_create_at: (!limit.unlimited()).then(|| budget.next_create_at(limit, now)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::sqlite::{memory_pool, query_plan};

    const LIMIT: PacingLimit = PacingLimit {
        max_creates: 3,
        window_ms: 10_000,
    };

    #[tokio::test]
    async fn spends_stop_at_the_cap_and_resume_as_the_oldest_expires() {
        let pool = memory_pool().await;
        for (i, at) in [1_000, 2_000, 3_000].into_iter().enumerate() {
            assert_eq!(
                spend(&pool, at, LIMIT, i as i64).await.expect("spend"),
                None
            );
        }
        // Full: the next unit frees when the spend at 1 000 stops counting.
        let next = spend(&pool, 4_000, LIMIT, 9).await.expect("spend");
        assert_eq!(next, Some(1_000 + LIMIT.span_ms()));
        assert_eq!(
            spend(&pool, 1_000 + LIMIT.span_ms() - 1, LIMIT, 9)
                .await
                .expect("spend"),
            Some(1_000 + LIMIT.span_ms())
        );
        assert_eq!(
            spend(&pool, 1_000 + LIMIT.span_ms(), LIMIT, 9)
                .await
                .expect("spend"),
            None
        );
        // Expired spends are forgotten, never more than the cap kept in the window.
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM create_spends")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(kept, 3);
        // Each spend binds a new offset: none may make SQLite plan the statement again.
        assert_eq!(
            crate::outbox::sqlite::reprepared(&pool).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn tallyfys_cap_holds_every_spend_until_it_ends() {
        let pool = memory_pool().await;
        let mut tx = pool.begin().await.expect("tx");
        empty_until(&mut tx, 50_000).await.expect("empty");
        tx.commit().await.expect("commit");
        assert_eq!(
            spend(&pool, 49_999, LIMIT, 1).await.expect("spend"),
            Some(50_000)
        );
        let budget = budget(&pool, 49_999, LIMIT).await.expect("budget");
        assert_eq!(budget.left(LIMIT, 49_999), 0);
        assert_eq!(spend(&pool, 50_000, LIMIT, 1).await.expect("spend"), None);
    }

    /// Spends of a lowered cap, read only by index: a spend and a claim's budget read stay
    /// cheap however long the bridge has run.
    #[tokio::test]
    async fn the_budget_queries_read_only_the_spend_index() {
        for sql in [SPEND, FORGET, COUNT, SPEND_AT] {
            let detail = query_plan(sql).await;
            assert!(
                !detail.iter().any(|d| d.starts_with("SCAN create_spends")),
                "{sql}: {detail:?}"
            );
            assert!(
                detail.iter().any(|d| d.contains("create_spends_at")),
                "{sql}: {detail:?}"
            );
        }
    }
}
