//! Claiming due rows under a lease (at most one per email), and what a claimed attempt reads
//! before it calls: the guest ledger and whether the email was attempted before.

use anyhow::Context;
use sqlx::SqlitePool;

use crate::outbox::Claimed;

/// ?1 now, ?2 how many, ?3 look-ahead window, ?4 lease end. One row per claim key (an email,
/// or a CRM record until its email is known). Index-only: see the plan test. `INDEXED BY` pins
/// each index: without statistics the planner may pick an admin-list index instead and sort
/// every waiting row. Limits are cast (see [`super::reprepared`]).
const CLAIM: &str = "WITH candidates AS (
         SELECT * FROM (
             SELECT id, claim_key, next_attempt_at AS due_at FROM outbox INDEXED BY outbox_due
             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT CAST(?3 AS INTEGER))
         UNION ALL
         SELECT * FROM (
             SELECT id, claim_key, lease_until AS due_at FROM outbox INDEXED BY outbox_leases
             WHERE state = 'in_flight' AND lease_until <= ?1
             ORDER BY lease_until LIMIT CAST(?3 AS INTEGER))
     ),
     picked AS (
         SELECT min(c.id) AS id, min(c.due_at) AS due_at FROM candidates c
         WHERE NOT EXISTS (
             -- The first state test repeats the index's WHERE so SQLite may use
             -- outbox_key_attempted; the second is the one meant.
             SELECT 1 FROM outbox b INDEXED BY outbox_key_attempted
             WHERE b.claim_key = c.claim_key AND b.state IN ('in_flight', 'retrying', 'failed', 'cancelled')
               AND b.state = 'in_flight' AND b.lease_until > ?1)
         GROUP BY c.claim_key
         ORDER BY due_at
         LIMIT CAST(?2 AS INTEGER)
     )
     UPDATE outbox
     SET state = 'in_flight', attempts = attempts + 1, lease_until = ?4, updated_at = ?1
     WHERE id IN (SELECT id FROM picked)
     RETURNING id, email, payload, attempts, received_at, attempts_before_retry, retried_at";

/// Claims up to `limit` due rows, at most one per email, skipping emails already in flight.
/// Rows whose lease expired (their worker died) are due again.
pub async fn claim_due(
    pool: &SqlitePool,
    now: i64,
    limit: usize,
    lease_until: i64,
) -> anyhow::Result<Vec<Claimed>> {
    // Look ahead a bounded window of the earliest due rows, so a claim costs the same with
    // 1k or 1M rows; the window is wider than `limit` so one busy email cannot starve others.
    let window = (limit * 8 + 64) as i64;
    sqlx::query_as(CLAIM)
        .bind(now)
        .bind(limit as i64)
        .bind(window)
        .bind(lease_until)
        .fetch_all(pool)
        .await
        .context("Failed to claim due outbox rows")
}

/// The Tallyfy guest id already known for this email, if any.
pub(super) async fn ledger_lookup(
    pool: &SqlitePool,
    org_id: &str,
    email: &str,
) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT guest_id FROM guest_ledger WHERE org_id = ?1 AND email = ?2")
        .bind(org_id)
        .bind(email)
        .fetch_optional(pool)
        .await
        .context("Failed to read the guest ledger")
}

/// True when another row of this email was attempted and not delivered (in flight, retrying,
/// failed or cancelled, or queued again by an operator's retry), or such a row was pruned (`attempted_emails`): its create may have
/// reached Tallyfy, so this delivery must look the guest up before creating it. (A delivered
/// row put its id in the ledger, which is checked first.) The state list is the
/// `outbox_key_attempted` index's, so the query uses that index.
pub(super) async fn email_attempted_before(
    pool: &SqlitePool,
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

/// ?1 email, ?2 the asking row. The second test is a row an operator retried, queued again
/// after attempts of its own (queued rows are outside `outbox_key_attempted`); an email has few
/// rows, so reading them all by `outbox_email_received` stays cheap.
const ATTEMPTED_BEFORE: &str = "SELECT EXISTS (SELECT 1 FROM outbox INDEXED BY outbox_key_attempted
         WHERE claim_key = ?1 AND id <> ?2
           AND state IN ('in_flight', 'retrying', 'failed', 'cancelled'))
     OR EXISTS (SELECT 1 FROM outbox INDEXED BY outbox_email_received
         WHERE email = ?1 AND id <> ?2 AND state = 'queued' AND attempts > 0)
     OR EXISTS (SELECT 1 FROM attempted_emails WHERE email = ?1)";

/// When the next row becomes due (a retry time or a lease end), if any is waiting.
pub(super) async fn next_due_at(pool: &SqlitePool) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT min(t) FROM (
             SELECT min(next_attempt_at) AS t FROM outbox INDEXED BY outbox_due
             WHERE state IN ('queued', 'retrying')
             UNION ALL
             SELECT min(lease_until) FROM outbox INDEXED BY outbox_leases
             WHERE state = 'in_flight')",
    )
    .fetch_one(pool)
    .await
    .context("Failed to read the next due time")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim runs on every worker wake-up; a `SCAN outbox` would make it slower with every
    /// delivered row kept.
    #[tokio::test]
    async fn the_claim_reads_only_indexes() {
        let detail = crate::outbox::sqlite::query_plan(CLAIM).await;
        assert!(
            !detail.iter().any(|d| d.starts_with("SCAN outbox")),
            "{detail:?}"
        );
        for index in ["outbox_due", "outbox_leases", "outbox_key_attempted"] {
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index}: {detail:?}"
            );
        }
    }

    /// Every claim binds a new `now` and often a new limit; neither may make SQLite parse and
    /// plan the statement again (see `reprepared`).
    #[tokio::test]
    async fn the_claim_is_prepared_once_however_its_parameters_change() {
        let pool = crate::outbox::sqlite::memory_pool().await;
        for (i, limit) in [1, 4, 1, 32, 2].into_iter().enumerate() {
            let now = 1_000 + i as i64;
            claim_due(&pool, now, limit, now + 90_000)
                .await
                .expect("claim");
            next_due_at(&pool).await.expect("next due");
        }
        assert_eq!(
            crate::outbox::sqlite::reprepared(&pool).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn the_earlier_attempts_check_reads_only_indexes() {
        let detail = crate::outbox::sqlite::query_plan(ATTEMPTED_BEFORE).await;
        assert!(
            !detail.iter().any(|d| d.starts_with("SCAN outbox")),
            "{detail:?}"
        );
        for index in ["outbox_key_attempted", "outbox_email_received"] {
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index}: {detail:?}"
            );
        }
    }
}
