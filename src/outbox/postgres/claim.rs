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

/// $1 now, $2 how many, $3 look-ahead window, $4 lease end. One row per claim key (an email,
/// or a CRM record until its email is known). Index-only: see the plan test.
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
     RETURNING id, email, payload, attempts, received_at, attempts_before_retry, retried_at";

/// Claims up to `limit` due rows, at most one per email, skipping emails already in flight.
/// Rows whose lease expired (their worker died) are due again.
pub(super) async fn claim_due(
    pool: &PgPool,
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

/// The Tallyfy guest id already known for this email, if any.
pub(super) async fn ledger_lookup(
    pool: &PgPool,
    org_id: &str,
    email: &str,
) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT guest_id FROM guest_ledger WHERE org_id = $1 AND email = $2")
        .bind(org_id)
        .bind(email)
        .fetch_optional(pool)
        .await
        .context("Failed to read the guest ledger")
}

/// True when another row of this email was attempted and not delivered (in flight, retrying,
/// failed or cancelled, or queued again by an operator's retry), or such a row was pruned
/// (`attempted_emails`): its create may have reached Tallyfy, so this delivery must look the
/// guest up before creating it. (A delivered row put its id in the ledger, which is checked
/// first.) The state list is the `outbox_key_attempted` index's, so the query can use that
/// index.
pub(super) async fn email_attempted_before(
    pool: &PgPool,
    email: &str,
    except_id: i64,
) -> anyhow::Result<bool> {
    sqlx::query_scalar(ATTEMPTED_BEFORE)
        .bind(email)
        .bind(except_id)
        .fetch_one(pool)
        .await
        .context("Failed to read earlier attempts for an email")
}

/// $1 email, $2 the asking row. The second test is a row an operator retried, queued again
/// after attempts of its own (queued rows are outside `outbox_key_attempted`); an email has few
/// rows, so reading them all by `outbox_email_received` stays cheap.
const ATTEMPTED_BEFORE: &str = "SELECT EXISTS (SELECT 1 FROM outbox
         WHERE claim_key = $1 AND id <> $2
           AND state IN ('in_flight', 'retrying', 'failed', 'cancelled'))
     OR EXISTS (SELECT 1 FROM outbox
         WHERE email = $1 AND id <> $2 AND state = 'queued' AND attempts > 0)
     OR EXISTS (SELECT 1 FROM attempted_emails WHERE email = $1)";

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
            .replace("$4", "5000");
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
    async fn the_earlier_attempts_check_reads_only_indexes() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let sql = ATTEMPTED_BEFORE
            .replace("$1", "'a@example.com'")
            .replace("$2", "1");
        let detail = super::super::query_plan(&pool, &sql).await;
        assert!(
            !detail.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{detail:#?}"
        );
        for index in ["outbox_key_attempted", "outbox_email_received"] {
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

        let claimed = claim_due(&pool, 100, 10, 1_100).await.expect("claim");
        let mut ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![a1, b]);
        assert!(claimed.iter().all(|c| c.attempts == 1));
        // a's second row waits for the first; c is not due yet.
        assert!(
            claim_due(&pool, 200, 10, 1_200)
                .await
                .expect("claim")
                .is_empty()
        );
        // a's second row is due (20) though it waits for the first.
        assert_eq!(next_due_at(&pool).await.expect("next"), Some(20));

        // The lease ended (its worker died): the same row is claimed again, attempt 2, before
        // a's other row.
        let again = claim_due(&pool, 1_100, 10, 2_100).await.expect("claim");
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
            tokio::spawn(async move { claim_due(&pool, 1_000, 4, 60_000).await })
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
            async move { claim_due(&pool, 100, 10, 60_000).await }
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
            claim_due(&pool, 100, 10, 60_000)
                .await
                .expect("claim")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_ledger_and_earlier_attempts_are_read() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
             VALUES ('org', 'a@example.com', 'g1', 1, 'created', 1)",
        )
        .execute(&pool)
        .await
        .expect("ledger");
        assert_eq!(
            ledger_lookup(&pool, "org", "a@example.com")
                .await
                .expect("lookup"),
            Some("g1".to_owned())
        );
        assert_eq!(
            ledger_lookup(&pool, "other", "a@example.com")
                .await
                .expect("lookup"),
            None
        );

        let first = queue(&pool, "b@example.com", 1).await;
        let second = queue(&pool, "b@example.com", 2).await;
        assert!(
            !email_attempted_before(&pool, "b@example.com", second)
                .await
                .expect("read")
        );
        sqlx::query("UPDATE outbox SET state = 'retrying', attempts = 1 WHERE id = $1")
            .bind(first)
            .execute(&pool)
            .await
            .expect("retrying");
        assert!(
            email_attempted_before(&pool, "b@example.com", second)
                .await
                .expect("read")
        );
        assert!(
            !email_attempted_before(&pool, "b@example.com", first)
                .await
                .expect("read")
        );
        // An operator's retry: queued again after an attempt of its own.
        sqlx::query("UPDATE outbox SET state = 'queued' WHERE id = $1")
            .bind(first)
            .execute(&pool)
            .await
            .expect("queued");
        assert!(
            email_attempted_before(&pool, "b@example.com", second)
                .await
                .expect("read")
        );
        // A pruned attempted row.
        sqlx::query("INSERT INTO attempted_emails (email, outbox_id, pruned_at) VALUES ('c@example.com', 9, 1)")
            .execute(&pool)
            .await
            .expect("attempted");
        assert!(
            email_attempted_before(&pool, "c@example.com", 0)
                .await
                .expect("read")
        );
    }
}
