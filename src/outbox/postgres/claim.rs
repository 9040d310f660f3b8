//! Claiming due rows under a lease, at most one per email across every replica, and what a
//! claimed attempt reads before it calls: the guest ledger and whether the email was attempted
//! before.

use anyhow::Context;
use sqlx::PgPool;

use crate::outbox::Claimed;

/// The advisory lock every replica's claim transaction takes first ("tallyfy" in ASCII, then
/// 1): claims run one at a time across the database, so each claim statement's snapshot (taken
/// after the lock is granted, READ COMMITTED) sees every earlier claim committed, and two
/// replicas never pick two rows of one email at once. A claim is one short statement, so the
/// wait is short; results, appends and reads do not take it.
const CLAIM_LOCK: i64 = 0x7461_6c6c_7966_7901;

/// The unique partial index that keeps one row per claim key in flight.
const ONE_IN_FLIGHT: &str = "outbox_one_in_flight";

/// $1 now, $2 how many, $3 look-ahead window, $4 lease end, $5 org. One row per claim key (an
/// email, or a CRM record until its email is known). Index-only: see the plan test. Each row
/// comes back with its email's ledger entry and earlier attempts, as on SQLite (see there);
/// the subqueries read the statement's snapshot, taken under the claim lock.
///
/// Candidates are locked `FOR UPDATE SKIP LOCKED`: a row another transaction is changing (its
/// result being recorded, an operator's cancel) is skipped, not waited for, and claimed on a
/// later tick if still due.
///
/// A key is skipped while it has a row in flight other than the candidate itself: under a live
/// lease (as on SQLite), or under an expired one, which is then the key's only claimable row
/// (the unique `outbox_one_in_flight` forbids two rows of a key in flight, even one whose worker
/// died; SQLite would claim the key's oldest due row beside it).
const CLAIM: &str = "WITH due AS (
         SELECT id, claim_key, next_attempt_at AS due_at FROM outbox
         WHERE state IN ('queued', 'retrying') AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT $3
         FOR UPDATE SKIP LOCKED
     ),
     expired AS (
         SELECT id, claim_key, lease_until AS due_at FROM outbox
         WHERE state = 'in_flight' AND lease_until <= $1
         ORDER BY lease_until LIMIT $3
         FOR UPDATE SKIP LOCKED
     ),
     candidates AS (
         SELECT * FROM due UNION ALL SELECT * FROM expired
     ),
     picked AS (
         SELECT min(c.id) AS id, min(c.due_at) AS due_at FROM candidates c
         WHERE NOT EXISTS (
             SELECT 1 FROM outbox b
             WHERE b.claim_key = c.claim_key AND b.state = 'in_flight'
               AND (b.lease_until > $1 OR b.id <> c.id))
         GROUP BY c.claim_key
         ORDER BY due_at
         LIMIT $2
     )
     UPDATE outbox
     SET state = 'in_flight', attempts = attempts + 1, lease_until = $4, updated_at = $1
     WHERE id IN (SELECT id FROM picked)
     RETURNING id, email, payload, attempts, received_at, attempts_before_retry, retried_at,
         (SELECT guest_id FROM guest_ledger WHERE org_id = $5 AND email = outbox.email)
             AS known_guest_id,
         EXISTS (SELECT 1 FROM outbox o
                 WHERE o.claim_key = outbox.email AND o.id <> outbox.id
                   AND o.state IN ('in_flight', 'retrying', 'failed', 'cancelled'))
         OR EXISTS (SELECT 1 FROM outbox o
                 WHERE o.email = outbox.email AND o.id <> outbox.id
                   AND o.state = 'queued' AND o.attempts > 0)
         OR EXISTS (SELECT 1 FROM attempted_emails a WHERE a.email = outbox.email)
             AS attempted_before";

/// Claims up to `limit` due rows, at most one per email, skipping emails already in flight.
/// Rows whose lease expired (their worker died) are due again.
pub(super) async fn claim_due(
    pool: &PgPool,
    org_id: &str,
    now: i64,
    limit: usize,
    lease_until: i64,
) -> anyhow::Result<Vec<Claimed>> {
    // Look ahead a bounded window of the earliest due rows, so a claim costs the same with
    // 1k or 1M rows; the window is wider than `limit` so one busy email cannot starve others.
    let window = (limit * 8 + 64) as i64;
    let mut tx = pool.begin().await.context("Failed to begin a claim")?;
    // Safe across replicas: the advisory lock serialises claims (see CLAIM_LOCK), SKIP LOCKED
    // keeps a claim from waiting on rows being recorded, and the unique index is the last
    // arbiter should two claims ever race anyway.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await
        .context("Failed to take the claim lock")?;
    let claimed = sqlx::query_as(CLAIM)
        .bind(now)
        .bind(limit as i64)
        .bind(window)
        .bind(lease_until)
        .bind(org_id)
        .fetch_all(&mut *tx)
        .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) if is_second_in_flight(&error) => {
            // Another claim put a row of one of these keys in flight first: claim nothing now
            // (the transaction rolls back as it is dropped); the worker tries again next tick.
            tracing::info!("A claim raced another for one email; trying again later");
            return Ok(Vec::new());
        }
        Err(error) => return Err(error).context("Failed to claim due outbox rows"),
    };
    tx.commit().await.context("Failed to commit a claim")?;
    Ok(claimed)
}

/// The claim would have put a second row of one key in flight (SQLSTATE 23505 on
/// `outbox_one_in_flight`).
fn is_second_in_flight(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("23505") && db.constraint() == Some(ONE_IN_FLIGHT)
    })
}

/// When the next row becomes due (a retry time or a lease end), if any is waiting.
const NEXT_DUE: &str = "SELECT min(t) FROM (
         SELECT min(next_attempt_at) AS t FROM outbox
         WHERE state IN ('queued', 'retrying')
         UNION ALL
         SELECT min(lease_until) FROM outbox
         WHERE state = 'in_flight') AS due";

pub(super) async fn next_due_at(pool: &PgPool) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar(NEXT_DUE)
        .fetch_one(pool)
        .await
        .context("Failed to read the next due time")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts a queued row of `email` due at `due`, and returns its id.
    async fn queue(pool: &PgPool, email: &str, due: i64) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
             VALUES ('canonical', $1, '{}', $2, $2, $2) RETURNING id",
        )
        .bind(email)
        .bind(due)
        .fetch_one(pool)
        .await
        .expect("insert")
    }

    /// The claim runs on every worker wake-up; a `Seq Scan on outbox` would make it slower with
    /// every delivered row kept. (The key check may read `outbox_one_in_flight`,
    /// `outbox_key_attempted` or `outbox_leases`: each holds every in-flight row.)
    #[tokio::test]
    async fn the_claim_reads_only_indexes() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // An outbox as it looks after a while: mostly delivered rows, a backlog mostly not due
        // yet, some rows in flight, so the planner has statistics of each partial index.
        sqlx::query(
            "INSERT INTO outbox (source, email, payload, state, next_attempt_at, lease_until,
                                 received_at, updated_at)
             SELECT 'canonical', 'u' || i || '@example.com', '{}',
                    CASE WHEN i <= 40 THEN 'in_flight' WHEN i <= 2000 THEN 'queued'
                         ELSE 'delivered' END,
                    i * 50, CASE WHEN i <= 40 THEN i * 50 END, i, i
             FROM generate_series(1, 6000) AS i",
        )
        .execute(&pool)
        .await
        .expect("rows");
        sqlx::query("ANALYZE outbox")
            .execute(&pool)
            .await
            .expect("analyze");
        let sql = CLAIM
            .replace("$1", "1000")
            .replace("$2", "8")
            .replace("$3", "128")
            .replace("$4", "5000")
            .replace("$5", "'org'");
        // Planned with statistics (ANALYZE above), sequential scans allowed: the plan a
        // production outbox gets.
        let detail: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .fetch_all(&pool)
            .await
            .expect("plan");
        assert!(
            !detail.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{detail:#?}"
        );
        for index in ["outbox_due", "outbox_leases"] {
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index}: {detail:#?}"
            );
        }
    }

    #[tokio::test]
    async fn the_next_due_time_reads_only_indexes() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let detail = super::super::query_plan(&pool, NEXT_DUE).await;
        assert!(
            !detail.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{detail:#?}"
        );
    }

    #[tokio::test]
    async fn one_row_per_email_is_claimed_and_expired_leases_are_due_again() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let a1 = queue(&pool, "a@example.com", 10).await;
        let _a2 = queue(&pool, "a@example.com", 20).await;
        let b = queue(&pool, "b@example.com", 30).await;
        let _later = queue(&pool, "c@example.com", 5_000).await;
        assert_eq!(next_due_at(&pool).await.expect("next"), Some(10));

        let claimed = claim_due(&pool, "org", 100, 10, 1_100)
            .await
            .expect("claim");
        let mut ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![a1, b]);
        assert!(claimed.iter().all(|c| c.attempts == 1));
        // a's second row waits for the first; c is not due yet.
        assert!(
            claim_due(&pool, "org", 200, 10, 1_200)
                .await
                .expect("claim")
                .is_empty()
        );
        // a's second row is due (20) though it waits for the first.
        assert_eq!(next_due_at(&pool).await.expect("next"), Some(20));

        // The lease ended (its worker died): the same row is claimed again, attempt 2, before
        // a's other row.
        let again = claim_due(&pool, "org", 1_100, 10, 2_100)
            .await
            .expect("claim");
        let mut ids: Vec<(i64, i64)> = again.iter().map(|c| (c.id, c.attempts)).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![(a1, 2), (b, 2)]);
    }

    #[tokio::test]
    async fn concurrent_claims_never_put_two_rows_of_one_email_in_flight() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        for i in 0..40 {
            queue(&pool, &format!("u{}@example.com", i % 5), i).await;
        }
        let claims = (0..8).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { claim_due(&pool, "org", 1_000, 4, 60_000).await })
        });
        let mut total = 0;
        for claim in claims {
            total += claim.await.expect("join").expect("claim").len();
        }
        assert_eq!(total, 5);
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT claim_key) FROM outbox WHERE state = 'in_flight'",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(in_flight, 5);
    }

    #[tokio::test]
    async fn a_second_row_of_a_key_in_flight_is_an_empty_claim() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let mut conn = pool.acquire().await.expect("connection");
        queue(&pool, "a@example.com", 1).await;
        queue(&pool, "a@example.com", 2).await;
        let error = sqlx::query("UPDATE outbox SET state = 'in_flight', lease_until = 10")
            .execute(&mut *conn)
            .await
            .expect_err("unique");
        assert!(is_second_in_flight(&error), "{error:?}");
    }

    /// Should a row of a key go in flight beside the claim (here a transaction that skips the
    /// claim lock, committing while the claim waits on the unique index), the claim fails on
    /// `outbox_one_in_flight` and answers nothing, rather than an error; the next claim sees
    /// the key in flight.
    #[tokio::test]
    async fn a_claim_that_loses_a_race_on_the_unique_index_claims_nothing() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let first = queue(&pool, "a@example.com", 1).await;
        let second = queue(&pool, "a@example.com", 2).await;
        let mut racer = pool.begin().await.expect("tx");
        sqlx::query("UPDATE outbox SET state = 'in_flight', lease_until = 60000 WHERE id = $1")
            .bind(first)
            .execute(&mut *racer)
            .await
            .expect("in flight");
        // The claim skips the locked first row, picks the second and waits on the index entry
        // of the racer's uncommitted first row.
        let claim = tokio::spawn({
            let pool = pool.clone();
            async move { claim_due(&pool, "org", 100, 10, 60_000).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        racer.commit().await.expect("commit");
        let claimed = claim.await.expect("join").expect("claim");
        assert!(claimed.is_empty(), "{claimed:?}");
        let state: String = sqlx::query_scalar("SELECT state FROM outbox WHERE id = $1")
            .bind(second)
            .fetch_one(&pool)
            .await
            .expect("row");
        assert_eq!(state, "queued");
        assert!(
            claim_due(&pool, "org", 100, 10, 60_000)
                .await
                .expect("claim")
                .is_empty()
        );
    }

    /// A claimed row comes with its email's ledger entry (of the worker's org only) and
    /// whether another row of the email was attempted: retrying, queued again by an
    /// operator's retry, or pruned.
    #[tokio::test]
    async fn a_claimed_row_knows_its_ledger_entry_and_earlier_attempts() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let run = |sql: &'static str, id: i64| {
            let pool = pool.clone();
            async move {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .expect("update");
            }
        };
        sqlx::query(
            "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
             VALUES ('org', 'a@example.com', 'g1', 1, 'created', 1),
                    ('other', 'z@example.com', 'g9', 2, 'created', 1)",
        )
        .execute(&pool)
        .await
        .expect("ledger");
        let a = queue(&pool, "a@example.com", 1).await;
        let z = queue(&pool, "z@example.com", 2).await;
        let mut claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        claimed.sort_by_key(|c| c.id);
        let seen: Vec<_> = claimed
            .iter()
            .map(|c| (c.id, c.known_guest_id.as_deref(), c.attempted_before))
            .collect();
        assert_eq!(seen, vec![(a, Some("g1"), false), (z, None, false)]);

        // b's first row is retrying, not yet due: its second row must look the guest up.
        let first = queue(&pool, "b@example.com", 3).await;
        let second = queue(&pool, "b@example.com", 4).await;
        run(
            "UPDATE outbox SET state = 'retrying', attempts = 1, next_attempt_at = 99999 WHERE id = $1",
            first,
        )
        .await;
        let claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].attempted_before), (second, true));

        // Queued again by an operator's retry, after an attempt of its own: still counts.
        run("UPDATE outbox SET state = 'queued' WHERE id = $1", first).await;
        run(
            "UPDATE outbox SET state = 'queued', lease_until = NULL WHERE id = $1",
            second,
        )
        .await;
        let claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].attempted_before), (second, true));

        // A pruned attempted row.
        sqlx::query(
            "INSERT INTO attempted_emails (email, outbox_id, pruned_at) VALUES ('c@example.com', 9, 1)",
        )
        .execute(&pool)
        .await
        .expect("attempted");
        let c = queue(&pool, "c@example.com", 5).await;
        let claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].attempted_before), (c, true));
    }
}
