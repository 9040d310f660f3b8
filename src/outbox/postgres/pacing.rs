//! Pacing within Tallyfy's hourly guest-invite cap, shared by every replica: a sliding log of
//! spends (`create_spends`), spent by one conditional insert under the `create_budget` row's
//! lock, and the one-row `create_budget` (the announced limit, Tallyfy's own cap hold).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use crate::domain::pacing::{Budget, PacingLimit, PacingSnapshot, slot_at};

/// Locks the budget row for the spend's transaction: every replica's spend takes it first, so
/// spends run one at a time across the database.
const LOCK: &str = "SELECT id FROM create_budget WHERE id = 1 FOR UPDATE";

/// $1 now, $2 span, $3 cap, $4 the spending row. Inserts only while fewer than the cap still
/// count and Tallyfy's cap does not hold: check and spend in one statement, run under the
/// `create_budget` row lock (READ COMMITTED: the statement's snapshot, taken after the lock was
/// granted, sees every spend committed before, so no window holds more than the cap).
const SPEND: &str = "INSERT INTO create_spends (spent_at, outbox_id)
     SELECT $1, $4
     WHERE (SELECT count(*) FROM create_spends WHERE spent_at > $1 - $2) < $3
       AND coalesce((SELECT exhausted_until FROM create_budget WHERE id = 1), 0) <= $1";

/// $1 now, $2 span: spends that no longer count, deleted in the spend's transaction.
const FORGET: &str = "DELETE FROM create_spends WHERE spent_at <= $1 - $2";

/// $1 now, $2 span.
const COUNT: &str = "SELECT count(*) FROM create_spends WHERE spent_at > $1 - $2";

/// $1 now, $2 span, $3 offset: the spend at that offset, oldest first.
const SPEND_AT: &str = "SELECT spent_at FROM create_spends WHERE spent_at > $1 - $2
     ORDER BY spent_at LIMIT 1 OFFSET $3";

/// Spends one unit for `outbox_id`'s create at `now`, if one is left: `Ok(None)`, else when the
/// next may be spent.
pub(super) async fn spend(
    pool: &PgPool,
    now: i64,
    limit: PacingLimit,
    outbox_id: i64,
) -> anyhow::Result<Option<i64>> {
    let mut tx = pool.begin().await.context("Failed to begin a spend")?;
    // The budget row first: the transaction holds its lock from here to its commit, so the
    // count and the insert below are never interleaved with another replica's.
    sqlx::query(LOCK)
        .execute(&mut *tx)
        .await
        .context("Failed to lock the create budget")?;
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
pub(super) async fn budget(pool: &PgPool, now: i64, limit: PacingLimit) -> anyhow::Result<Budget> {
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to read the create budget")?;
    read(&mut conn, now, limit).await
}

async fn read(conn: &mut PgConnection, now: i64, limit: PacingLimit) -> anyhow::Result<Budget> {
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

async fn exhausted_until(conn: &mut PgConnection) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar("SELECT exhausted_until FROM create_budget WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .context("Failed to read the create budget")
}

async fn spend_at(
    conn: &mut PgConnection,
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

/// Records the limit the worker runs with, for `/status` of every process (the last replica to
/// start announces; replicas are meant to run with one configuration).
pub(super) async fn announce(pool: &PgPool, limit: PacingLimit) -> anyhow::Result<()> {
    sqlx::query("UPDATE create_budget SET max_creates = $1, window_ms = $2 WHERE id = 1")
        .bind(i64::from(limit.max_creates))
        .bind(limit.window_ms)
        .execute(pool)
        .await
        .context("Failed to record the create budget's limit")?;
    Ok(())
}

/// Tallyfy said its hourly cap is reached: nothing is spent before `until` (recorded with the
/// attempt's row, in its transaction). The hold only grows, whichever replica heard it last.
pub(super) async fn empty_until(tx: &mut PgConnection, until: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE create_budget SET exhausted_until = greatest(coalesce(exhausted_until, 0), $1)
         WHERE id = 1",
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
    conn: &mut PgConnection,
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

    const LIMIT: PacingLimit = PacingLimit {
        max_creates: 3,
        window_ms: 10_000,
    };

    #[tokio::test]
    async fn spends_stop_at_the_cap_and_resume_as_the_oldest_expires() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
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
    }

    #[tokio::test]
    async fn tallyfys_cap_holds_every_spend_until_it_ends() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let mut tx = pool.begin().await.expect("tx");
        empty_until(&mut tx, 50_000).await.expect("empty");
        // The hold never shrinks.
        empty_until(&mut tx, 40_000).await.expect("empty");
        tx.commit().await.expect("commit");
        assert_eq!(
            spend(&pool, 49_999, LIMIT, 1).await.expect("spend"),
            Some(50_000)
        );
        let budget = budget(&pool, 49_999, LIMIT).await.expect("budget");
        assert_eq!(budget.left(LIMIT, 49_999), 0);
        assert_eq!(spend(&pool, 50_000, LIMIT, 1).await.expect("spend"), None);
    }

    /// Replicas spending at once never hold more than the cap in a window: N spends from
    /// several pools (as several bridges would) at one instant, cap k, exactly k succeed.
    #[tokio::test]
    async fn concurrent_spends_from_several_pools_never_exceed_the_cap() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let options = pool.connect_options();
        let mut pools = vec![pool.clone()];
        for _ in 0..2 {
            pools.push(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with((*options).clone())
                    .await
                    .expect("another pool"),
            );
        }
        let limit = PacingLimit {
            max_creates: 5,
            window_ms: 60_000,
        };
        let spends = (0..24).map(|i| {
            let pool = pools[i % pools.len()].clone();
            tokio::spawn(async move { spend(&pool, 1_000, limit, i as i64).await })
        });
        let mut successes = 0;
        for spend in spends {
            if spend.await.expect("join").expect("spend").is_none() {
                successes += 1;
            }
        }
        assert_eq!(successes, 5);
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM create_spends")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(kept, 5);
    }

    #[tokio::test]
    async fn the_snapshot_reads_the_announced_limit() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        announce(&pool, LIMIT).await.expect("announce");
        for at in [1_000, 2_000] {
            assert_eq!(spend(&pool, at, LIMIT, 1).await.expect("spend"), None);
        }
        let mut conn = pool.acquire().await.expect("connection");
        let snapshot = snapshot(&mut conn, 3_000, 4).await.expect("snapshot");
        assert_eq!(snapshot.limit, LIMIT);
        assert_eq!(snapshot.budget.spent, 2);
        assert_eq!(snapshot.waiting, 4);
        assert_eq!(snapshot.next_create_at, Some(3_000));
        // The fourth waiting row takes the budget's first slot (free now) one span later.
        assert_eq!(snapshot.drained_at, Some(3_000 + LIMIT.span_ms()));
    }

    /// Spends, a lowered cap's reads and the budget's reads by index: a spend and a claim's
    /// budget read stay cheap however long the bridge has run. (Sequential scans are off on the
    /// connection: with an empty table PostgreSQL would rightly prefer one.)
    #[tokio::test]
    async fn the_budget_queries_read_only_the_spend_index() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        for sql in [SPEND, FORGET, COUNT, SPEND_AT] {
            let sql = sql
                .replace("$1", "100000")
                .replace("$2", "10200")
                .replace("$3", "3")
                .replace("$4", "7");
            let detail = super::super::query_plan(&pool, &sql).await;
            assert!(
                !detail
                    .iter()
                    .any(|d| d.contains("Seq Scan on create_spends")),
                "{sql}: {detail:#?}"
            );
            assert!(
                detail.iter().any(|d| d.contains("create_spends_at")),
                "{sql}: {detail:#?}"
            );
        }
    }
}
