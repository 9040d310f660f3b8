//! Recording attempts' outcomes: the delivery gate, the guest ledger, the row, a refused CRM
//! record and the attempt log of a whole batch in one transaction, every row update fenced by
//! the attempt counter, so a result for a row another replica has claimed since changes
//! nothing.

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use crate::domain::outcome::Outcome;
use crate::outbox::AttemptResult;
use crate::outbox::row_change::RowChange;

/// $1 id, $2 attempt (the fence), $3 new state, $4 now, $5 next attempt, $6 refund (0/1),
/// $7 last error, $8 email, $9 payload, $10 org (a delivered row takes the ledger's guest id).
///
/// The fence across replicas: READ COMMITTED re-checks `state` and `attempts` on the newest
/// version of the row after waiting for any transaction changing it, so a result whose row was
/// re-claimed since (attempts moved on) updates nothing.
const UPDATE_ROW: &str = "UPDATE outbox
     SET state = $3, lease_until = NULL, updated_at = $4,
         next_attempt_at = coalesce($5, next_attempt_at),
         attempts = attempts - $6,
         last_error = $7,
         email = coalesce($8, email),
         payload = coalesce($9, payload),
         delivered_at = CASE WHEN $3 = 'delivered' THEN $4 ELSE delivered_at END,
         guest_id = CASE WHEN $3 = 'delivered'
             THEN (SELECT guest_id FROM guest_ledger WHERE org_id = $10 AND email = outbox.email)
             ELSE guest_id END
     WHERE id = $1 AND state = 'in_flight' AND attempts = $2";

/// Records a batch of results in one transaction; `true` for each result that still owned its
/// row (its attempt number was the row's).
///
/// Safe across replicas without a lock of its own: every row update is fenced (above), the
/// ledger insert is `ON CONFLICT DO NOTHING` on the ledger's key (a second replica's insert of
/// one email waits for the first to commit, then does nothing: the first guest id stays), and
/// the shared rows (`worker_state`, `create_budget`) are single-row updates that only move the
/// hold and the latest times forward.
pub(super) async fn record(
    pool: &PgPool,
    org_id: &str,
    results: &[AttemptResult],
) -> anyhow::Result<Vec<bool>> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin recording attempts")?;
    // The gate first, in the same commit as the rows: a row given back after a 401 must never
    // be due while delivery does not yet look paused, or a wake-up would call again at once.
    for result in results {
        let update = match &result.outcome {
            Outcome::Paused { reason, .. } => {
                sqlx::query("UPDATE worker_state SET paused_reason = $1 WHERE id = 1").bind(reason)
            }
            Outcome::RateLimited { until, .. } => sqlx::query(
                "UPDATE worker_state
                 SET rate_limited_until = greatest(coalesce(rate_limited_until, 0), $1)
                 WHERE id = 1",
            )
            .bind(until),
            Outcome::Paced {
                until,
                by_tallyfy: true,
                ..
            } => {
                super::pacing::empty_until(&mut tx, *until).await?;
                continue;
            }
            _ => continue,
        };
        update
            .execute(&mut *tx)
            .await
            .context("Failed to record the delivery gate")?;
    }
    let mut owned = Vec::with_capacity(results.len());
    for result in results {
        owned.push(record_one(&mut tx, org_id, result).await?);
    }
    // The worker state shows the latest of the batch: one update each, not one per result.
    // Across replicas the latest of any: a batch of older results recorded later (another
    // replica's) does not set the time back.
    let delivered_at = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Delivered { .. }))
        .map(|r| r.now)
        .max();
    if let Some(at) = delivered_at {
        sqlx::query(
            "UPDATE worker_state SET last_delivered_at = greatest(coalesce(last_delivered_at, 0), $1)
             WHERE id = 1",
        )
        .bind(at)
        .execute(&mut *tx)
        .await
        .context("Failed to update the worker state")?;
    }
    let last_error = results
        .iter()
        .rev()
        .find_map(|r| Some((r.outcome.error()?, r.now)));
    if let Some((error, at)) = last_error {
        sqlx::query(
            "UPDATE worker_state SET last_error = $1, last_error_at = $2
             WHERE id = 1 AND coalesce(last_error_at, 0) <= $2",
        )
        .bind(error)
        .bind(at)
        .execute(&mut *tx)
        .await
        .context("Failed to update the worker state")?;
    }
    tx.commit()
        .await
        .context("Failed to commit attempts' results")?;
    Ok(owned)
}

async fn record_one(
    tx: &mut PgConnection,
    org_id: &str,
    result: &AttemptResult,
) -> anyhow::Result<bool> {
    let AttemptResult {
        row,
        outcome,
        log,
        now,
    } = result;
    if let Outcome::Delivered {
        guest_id,
        learned_by,
    } = outcome
    {
        // Written whether or not the row is still this attempt's: the guest exists in Tallyfy
        // either way, and the first id known for an email stays.
        sqlx::query(
            "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, email) DO NOTHING",
        )
        .bind(org_id)
        .bind(&row.email)
        .bind(guest_id)
        .bind(row.id)
        .bind(learned_by)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to write the guest ledger")?;
    }
    let change = RowChange::of(outcome, *now);
    let updated = sqlx::query(UPDATE_ROW)
        .bind(row.id)
        .bind(row.attempts)
        .bind(change.state)
        .bind(now)
        .bind(change.next_attempt_at)
        .bind(i64::from(change.refund))
        .bind(change.last_error)
        .bind(change.email)
        .bind(change.payload)
        .bind(org_id)
        .execute(&mut *tx)
        .await
        .context("Failed to record an attempt's outcome")?;
    let owned = updated.rows_affected() == 1;
    if let (true, Outcome::Refused { refusal, .. }) = (owned, outcome) {
        super::refused::insert_for_row(tx, row.id, refusal, *now).await?;
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, http_status, outcome, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id)
    .bind(row.attempts)
    .bind(log.started_at)
    .bind(log.duration_ms)
    .bind(outcome.http_status().map(i64::from))
    .bind(outcome.class())
    // The error text is the outcome's own, so the log cannot disagree with the row.
    .bind(outcome.error())
    .execute(&mut *tx)
    .await
    .context("Failed to write the attempt log")?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::{LearnedBy, Stage};
    use crate::outbox::RowState;
    use crate::outbox::{AttemptLog, Claimed, Gate};

    const ORG: &str = "org";

    /// Queues a row of `email` (or of a CRM record when `None`) and claims it at `now`.
    async fn claimed(pool: &PgPool, email: Option<&str>, now: i64) -> Claimed {
        sqlx::query(
            "INSERT INTO outbox (source, email, crm_record, payload, next_attempt_at, received_at, updated_at)
             VALUES ('canonical', $1, CASE WHEN $1 IS NULL THEN 'hubspot:1:7' END, '{}', $2, $2, $2)",
        )
        .bind(email)
        .bind(now)
        .execute(pool)
        .await
        .expect("insert");
        let mut rows = super::super::claim::claim_due(pool, "org", now, 1, now + 60_000)
            .await
            .expect("claim");
        assert_eq!(rows.len(), 1);
        rows.remove(0)
    }

    fn result(row: &Claimed, outcome: Outcome, now: i64) -> AttemptResult {
        AttemptResult {
            row: row.clone(),
            outcome,
            log: AttemptLog {
                started_at: now - 5,
                duration_ms: 5,
            },
            now,
        }
    }

    fn delivered(guest_id: &str) -> Outcome {
        Outcome::Delivered {
            guest_id: guest_id.to_owned(),
            learned_by: LearnedBy::Created,
        }
    }

    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Row {
        state: RowState,
        attempts: i64,
        next_attempt_at: i64,
        lease_until: Option<i64>,
        guest_id: Option<String>,
        last_error: Option<String>,
        delivered_at: Option<i64>,
        email: Option<String>,
    }

    async fn row(pool: &PgPool, id: i64) -> Row {
        sqlx::query_as(
            "SELECT state, attempts, next_attempt_at, lease_until, guest_id, last_error,
                    delivered_at, email
             FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("row")
    }

    async fn log(pool: &PgPool, id: i64) -> Vec<(i64, String, Option<i64>, Option<String>)> {
        sqlx::query_as(
            "SELECT attempt, outcome, http_status, error FROM delivery_attempts
             WHERE outbox_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("log")
    }

    #[tokio::test]
    async fn a_delivery_writes_the_ledger_the_row_the_log_and_the_worker_state() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let claimed = claimed(&pool, Some("a@example.com"), 100).await;
        let owned = record(&pool, ORG, &[result(&claimed, delivered("g1"), 200)])
            .await
            .expect("record");
        assert_eq!(owned, vec![true]);
        let after = row(&pool, claimed.id).await;
        assert_eq!(after.state, RowState::Delivered);
        assert_eq!(after.guest_id.as_deref(), Some("g1"));
        assert_eq!(after.delivered_at, Some(200));
        assert_eq!(after.lease_until, None);
        assert_eq!(after.attempts, 1);
        assert_eq!(
            log(&pool, claimed.id).await,
            vec![(1, "delivered".to_owned(), None, None)]
        );
        let ledger: (String, i64, String) = sqlx::query_as(
            "SELECT guest_id, outbox_id, learned_by FROM guest_ledger
             WHERE org_id = $1 AND email = 'a@example.com'",
        )
        .bind(ORG)
        .fetch_one(&pool)
        .await
        .expect("ledger");
        assert_eq!(ledger, ("g1".to_owned(), claimed.id, "created".to_owned()));
        let last_delivered_at: Option<i64> =
            sqlx::query_scalar("SELECT last_delivered_at FROM worker_state WHERE id = 1")
                .fetch_one(&pool)
                .await
                .expect("worker state");
        assert_eq!(last_delivered_at, Some(200));
    }

    /// A result for a row claimed again since (its lease ran out, another replica took it)
    /// changes nothing of the row and reports false; its log line and the guest it learned are
    /// still kept.
    #[tokio::test]
    async fn a_result_of_a_lost_lease_changes_nothing() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let first = claimed(&pool, Some("a@example.com"), 100).await;
        // The lease ends; another replica claims the row: attempt 2.
        let mut again = super::super::claim::claim_due(&pool, "org", 60_100, 1, 120_000)
            .await
            .expect("claim");
        let second = again.remove(0);
        assert_eq!((second.id, second.attempts), (first.id, 2));

        let owned = record(&pool, ORG, &[result(&first, delivered("g-late"), 60_200)])
            .await
            .expect("record");
        assert_eq!(owned, vec![false]);
        let after = row(&pool, first.id).await;
        assert_eq!((after.state, after.attempts), (RowState::InFlight, 2));
        assert_eq!(after.guest_id, None);

        // The second attempt owns the row; the ledger already has the late guest, the first
        // known: the row takes it.
        let owned = record(&pool, ORG, &[result(&second, delivered("g2"), 60_300)])
            .await
            .expect("record");
        assert_eq!(owned, vec![true]);
        let after = row(&pool, first.id).await;
        assert_eq!(after.state, RowState::Delivered);
        assert_eq!(after.guest_id.as_deref(), Some("g-late"));
        let attempts: Vec<i64> = log(&pool, first.id).await.iter().map(|l| l.0).collect();
        assert_eq!(attempts, vec![1, 2]);
    }

    #[tokio::test]
    async fn retries_refund_imposed_waits_and_keep_the_error() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let spent = claimed(&pool, Some("a@example.com"), 100).await;
        let imposed = claimed(&pool, Some("b@example.com"), 100).await;
        let retry = |spent| Outcome::Retry {
            at: 5_000,
            reason: "503 from Tallyfy".to_owned(),
            status: Some(503),
            stage: Stage::Tallyfy,
            spent,
        };
        let owned = record(
            &pool,
            ORG,
            &[
                result(&spent, retry(true), 200),
                result(&imposed, retry(false), 210),
            ],
        )
        .await
        .expect("record");
        assert_eq!(owned, vec![true, true]);
        let a = row(&pool, spent.id).await;
        assert_eq!(
            (
                a.state,
                a.attempts,
                a.next_attempt_at,
                a.last_error.as_deref()
            ),
            (RowState::Retrying, 1, 5_000, Some("503 from Tallyfy"))
        );
        let b = row(&pool, imposed.id).await;
        assert_eq!((b.state, b.attempts), (RowState::Retrying, 0));
        assert_eq!(
            log(&pool, spent.id).await,
            vec![(
                1,
                "retry".to_owned(),
                Some(503),
                Some("503 from Tallyfy".to_owned())
            )]
        );
        let (error, at): (Option<String>, Option<i64>) =
            sqlx::query_as("SELECT last_error, last_error_at FROM worker_state WHERE id = 1")
                .fetch_one(&pool)
                .await
                .expect("worker state");
        assert_eq!(
            (error.as_deref(), at),
            (Some("503 from Tallyfy"), Some(210))
        );
    }

    /// The gate is written in the rows' commit: a 401 pauses every replica, a 429 holds them
    /// (the latest hold wins), Tallyfy's cap empties the shared budget.
    #[tokio::test]
    async fn the_gate_and_the_budget_are_recorded_with_the_rows() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let paused = claimed(&pool, Some("a@example.com"), 100).await;
        let limited = claimed(&pool, Some("b@example.com"), 100).await;
        let earlier = claimed(&pool, Some("c@example.com"), 100).await;
        let paced = claimed(&pool, Some("d@example.com"), 100).await;
        let owned = record(
            &pool,
            ORG,
            &[
                result(
                    &paused,
                    Outcome::Paused {
                        reason: "401 from Tallyfy".to_owned(),
                        status: Some(401),
                    },
                    200,
                ),
                result(
                    &limited,
                    Outcome::RateLimited {
                        until: 9_000,
                        reason: "429".to_owned(),
                    },
                    200,
                ),
                result(
                    &earlier,
                    Outcome::RateLimited {
                        until: 8_000,
                        reason: "429".to_owned(),
                    },
                    200,
                ),
                result(
                    &paced,
                    Outcome::Paced {
                        until: 70_000,
                        reason: "hourly cap".to_owned(),
                        by_tallyfy: true,
                    },
                    200,
                ),
            ],
        )
        .await
        .expect("record");
        assert_eq!(owned, vec![true; 4]);
        let gate: Gate = sqlx::query_as(
            "SELECT paused_reason, rate_limited_until FROM worker_state WHERE id = 1",
        )
        .fetch_one(&pool)
        .await
        .expect("gate");
        assert_eq!(
            gate,
            Gate {
                paused_reason: Some("401 from Tallyfy".to_owned()),
                rate_limited_until: Some(9_000),
            }
        );
        let exhausted: Option<i64> =
            sqlx::query_scalar("SELECT exhausted_until FROM create_budget WHERE id = 1")
                .fetch_one(&pool)
                .await
                .expect("budget");
        assert_eq!(exhausted, Some(70_000));
        // Every one given back its attempt; the paused row is due at once, the others at their
        // holds.
        let a = row(&pool, paused.id).await;
        assert_eq!(
            (a.state, a.attempts, a.next_attempt_at),
            (RowState::Retrying, 0, 200)
        );
        let b = row(&pool, limited.id).await;
        assert_eq!((b.attempts, b.next_attempt_at), (0, 9_000));
        let d = row(&pool, paced.id).await;
        assert_eq!((d.attempts, d.next_attempt_at), (0, 70_000));
        assert_eq!(
            log(&pool, paced.id).await,
            vec![(
                1,
                "paced".to_owned(),
                Some(429),
                Some("hourly cap".to_owned())
            )]
        );
    }

    #[tokio::test]
    async fn a_fetched_record_becomes_an_ordinary_row_of_its_email() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let claimed = claimed(&pool, None, 100).await;
        assert_eq!(claimed.email, None);
        let fetched = Outcome::Fetched {
            email: "a@example.com".to_owned(),
            payload: r#"{"email":"a@example.com"}"#.to_owned(),
        };
        let owned = record(&pool, ORG, &[result(&claimed, fetched, 200)])
            .await
            .expect("record");
        assert_eq!(owned, vec![true]);
        let after = row(&pool, claimed.id).await;
        assert_eq!(
            (
                after.state,
                after.attempts,
                after.next_attempt_at,
                after.email.as_deref()
            ),
            (RowState::Queued, 0, 200, Some("a@example.com"))
        );
        let (payload, claim_key): (String, String) =
            sqlx::query_as("SELECT payload, claim_key FROM outbox WHERE id = $1")
                .bind(claimed.id)
                .fetch_one(&pool)
                .await
                .expect("row");
        assert_eq!(payload, r#"{"email":"a@example.com"}"#);
        assert_eq!(claim_key, "a@example.com");
    }

    #[tokio::test]
    async fn a_failure_ends_the_row() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let claimed = claimed(&pool, Some("a@example.com"), 100).await;
        let failed = Outcome::Failed {
            reason: "400 from Tallyfy".to_owned(),
            status: Some(400),
            stage: Stage::Tallyfy,
        };
        let owned = record(&pool, ORG, &[result(&claimed, failed, 200)])
            .await
            .expect("record");
        assert_eq!(owned, vec![true]);
        let after = row(&pool, claimed.id).await;
        assert_eq!(
            (after.state, after.attempts, after.last_error.as_deref()),
            (RowState::Failed, 1, Some("400 from Tallyfy"))
        );
        assert_eq!(
            log(&pool, claimed.id).await,
            vec![(
                1,
                "failed".to_owned(),
                Some(400),
                Some("400 from Tallyfy".to_owned())
            )]
        );
    }

    /// Two replicas recording a delivery of one email at once (two rows, each its own claim):
    /// the ledger keeps exactly one guest id and both rows take it.
    #[tokio::test]
    async fn concurrent_deliveries_of_one_email_keep_one_ledger_entry() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let first = claimed(&pool, Some("a@example.com"), 100).await;
        let second = claimed(&pool, Some("b@example.com"), 100).await;
        // The second row's email is the first's as the worker sees it (a row of a CRM record
        // fetched to the same email): record both with "a@example.com".
        let mut second_as_a = second.clone();
        second_as_a.email = Some("a@example.com".to_owned());
        let one = [result(&first, delivered("g1"), 200)];
        let two = [result(&second_as_a, delivered("g2"), 200)];
        let (one, two) = tokio::join!(record(&pool, ORG, &one), record(&pool, ORG, &two));
        assert_eq!(one.expect("record"), vec![true]);
        assert_eq!(two.expect("record"), vec![true]);
        let ledger: Vec<String> =
            sqlx::query_scalar("SELECT guest_id FROM guest_ledger WHERE email = 'a@example.com'")
                .fetch_all(&pool)
                .await
                .expect("ledger");
        assert_eq!(ledger.len(), 1);
        assert_eq!(
            row(&pool, first.id).await.guest_id.as_ref(),
            Some(&ledger[0])
        );
    }
}
