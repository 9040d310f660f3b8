//! Claiming due rows under a lease (at most one per email), with what a claimed attempt reads
//! before it calls: the guest ledger and whether the email was attempted before.

use anyhow::Context;
use sqlx::SqlitePool;

use crate::outbox::Claimed;

/// ?1 now, ?2 how many, ?3 look-ahead window, ?4 lease end, ?5 org. One row per claim key (an
/// email, or a CRM record until its email is known). Index-only: see the plan test. `INDEXED BY`
/// pins each index: without statistics the planner may pick an admin-list index instead and
/// sort every waiting row. Limits are cast (see [`super::reprepared`]).
///
/// Each row comes back with what its attempt reads before calling, in the same statement
/// rather than two more queries an attempt: the guest id the ledger holds for its email (one
/// row of an email is in flight at a time, and only that row's result writes the ledger, so
/// this read is as fresh as one made at the call), and whether another row of the email was
/// attempted and not delivered (in flight, retrying, failed or cancelled; queued again by an
/// operator's retry, outside `outbox_key_attempted`, so looked for by email; or pruned, in
/// `attempted_emails`): its create may have reached Tallyfy, so this attempt looks the guest
/// up before creating it. (A delivered row put its id in the ledger.)
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
             WHERE b.claim_key = c.claim_key
               AND (b.state = 'in_flight' OR b.state = 'retrying' OR b.state = 'failed'
                    OR b.state = 'cancelled')
               AND b.state = 'in_flight' AND b.lease_until > ?1)
         GROUP BY c.claim_key
         ORDER BY due_at
         LIMIT CAST(?2 AS INTEGER)
     )
     UPDATE outbox
     SET state = 'in_flight', attempts = attempts + 1, lease_until = ?4, updated_at = ?1
     WHERE id IN (SELECT id FROM picked)
     RETURNING id, email, payload, attempts, received_at, attempts_before_retry, retried_at,
         (SELECT guest_id FROM guest_ledger WHERE org_id = ?5 AND email = outbox.email)
             AS known_guest_id,
         EXISTS (SELECT 1 FROM outbox o INDEXED BY outbox_key_attempted
                 WHERE o.claim_key = outbox.email AND o.id <> outbox.id
                   AND (o.state = 'in_flight' OR o.state = 'retrying' OR o.state = 'failed'
                        OR o.state = 'cancelled'))
         OR EXISTS (SELECT 1 FROM outbox o INDEXED BY outbox_email_received
                 WHERE o.email = outbox.email AND o.id <> outbox.id
                   AND o.state = 'queued' AND o.attempts > 0)
         OR EXISTS (SELECT 1 FROM attempted_emails a WHERE a.email = outbox.email)
             AS attempted_before";

/// Claims up to `limit` due rows, at most one per email, skipping emails already in flight;
/// `org_id`'s ledger answers for their emails. Rows whose lease expired (their worker died)
/// are due again.
pub async fn claim_due(
    pool: &SqlitePool,
    org_id: &str,
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
        .bind(org_id)
        .fetch_all(pool)
        .await
        .context("Failed to claim due outbox rows")
}

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
    /// delivered row kept. Its earlier-attempts and ledger reads go by index too.
    #[tokio::test]
    async fn the_claim_reads_only_indexes() {
        let detail = crate::outbox::sqlite::query_plan(CLAIM).await;
        assert!(
            !detail
                .iter()
                .any(|d| d.starts_with("SCAN outbox") || d.starts_with("SCAN o ")),
            "{detail:?}"
        );
        for index in [
            "outbox_due",
            "outbox_leases",
            "outbox_key_attempted",
            "outbox_email_received",
            "SEARCH guest_ledger USING PRIMARY KEY",
            "SEARCH a USING PRIMARY KEY",
        ] {
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index}: {detail:?}"
            );
        }
    }

    /// The claim's temporary B-trees are its own steps (the two CTEs, GROUP BY, ORDER BY, the
    /// picked ids and RETURNING), none a state test: those were eight more (issue 18).
    #[tokio::test]
    async fn the_claim_builds_temporary_tables_only_for_its_own_steps() {
        let tables = crate::outbox::sqlite::temporary_tables(CLAIM).await;
        assert!(tables <= 6, "{tables}");
    }

    /// Every claim binds a new `now` and often a new limit; neither may make SQLite parse and
    /// plan the statement again (see `reprepared`).
    #[tokio::test]
    async fn the_claim_is_prepared_once_however_its_parameters_change() {
        let pool = crate::outbox::sqlite::memory_pool().await;
        for (i, limit) in [1, 4, 1, 32, 2].into_iter().enumerate() {
            let now = 1_000 + i as i64;
            claim_due(&pool, "org", now, limit, now + 90_000)
                .await
                .expect("claim");
            next_due_at(&pool).await.expect("next due");
        }
        assert_eq!(
            crate::outbox::sqlite::reprepared(&pool).await,
            Vec::<String>::new()
        );
    }

    /// A claimed row comes with its email's ledger entry (of the worker's org only) and
    /// whether another row of the email was attempted: retrying, queued again by an
    /// operator's retry, or pruned.
    #[tokio::test]
    async fn a_claimed_row_knows_its_ledger_entry_and_earlier_attempts() {
        let pool = crate::outbox::sqlite::memory_pool().await;
        let queue = |email: &'static str, due: i64| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
                     VALUES ('canonical', ?1, '{}', ?2, ?2, ?2) RETURNING id",
                )
                .bind(email)
                .bind(due)
                .fetch_one(&pool)
                .await
                .expect("insert")
            }
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
        let a = queue("a@example.com", 1).await;
        let z = queue("z@example.com", 2).await;
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
        let first = queue("b@example.com", 3).await;
        let second = queue("b@example.com", 4).await;
        run(
            "UPDATE outbox SET state = 'retrying', attempts = 1, next_attempt_at = 99999 WHERE id = ?1",
            first,
        )
        .await;
        let claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].attempted_before), (second, true));

        // Queued again by an operator's retry, after an attempt of its own: still counts.
        run("UPDATE outbox SET state = 'queued' WHERE id = ?1", first).await;
        run(
            "UPDATE outbox SET state = 'queued', lease_until = NULL WHERE id = ?1",
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
        let c = queue("c@example.com", 5).await;
        let claimed = claim_due(&pool, "org", 100, 10, 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].attempted_before), (c, true));
    }
}
