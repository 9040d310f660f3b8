//! Recording attempts' outcomes: the delivery gate, the guest ledger, the row, a refused CRM
//! record and the attempt log of a whole batch in one transaction, every row update fenced by
//! the attempt counter.

use anyhow::Context;
use sqlx::{SqliteConnection, SqlitePool};

use crate::domain::outcome::Outcome;
use crate::outbox::AttemptResult;
use crate::outbox::row_change::RowChange;

/// ?1 id, ?2 attempt (the fence), ?3 new state, ?4 now, ?5 next attempt, ?6 refund (0/1),
/// ?7 last error, ?8 email, ?9 payload, ?10 org (a delivered row takes the ledger's guest id).
const UPDATE_ROW: &str = "UPDATE outbox
     SET state = ?3, lease_until = NULL, updated_at = ?4,
         next_attempt_at = coalesce(?5, next_attempt_at),
         attempts = attempts - ?6,
         last_error = ?7,
         email = coalesce(?8, email),
         payload = coalesce(?9, payload),
         delivered_at = CASE WHEN ?3 = 'delivered' THEN ?4 ELSE delivered_at END,
         guest_id = CASE WHEN ?3 = 'delivered'
             THEN (SELECT guest_id FROM guest_ledger WHERE org_id = ?10 AND email = outbox.email)
             ELSE guest_id END
     WHERE id = ?1 AND state = 'in_flight' AND attempts = ?2";

pub(super) async fn record(
    pool: &SqlitePool,
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
                sqlx::query("UPDATE worker_state SET paused_reason = ?1 WHERE id = 1").bind(reason)
            }
            Outcome::RateLimited { until, .. } => sqlx::query(
                "UPDATE worker_state SET rate_limited_until = max(coalesce(rate_limited_until, 0), ?1) WHERE id = 1",
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
    let delivered_at = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Delivered { .. }))
        .map(|r| r.now)
        .max();
    if let Some(at) = delivered_at {
        sqlx::query("UPDATE worker_state SET last_delivered_at = ?1 WHERE id = 1")
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
        sqlx::query("UPDATE worker_state SET last_error = ?1, last_error_at = ?2 WHERE id = 1")
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
    tx: &mut SqliteConnection,
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
        sqlx::query(
            "INSERT INTO guest_ledger (org_id, email, guest_id, outbox_id, learned_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
    /// Recording an outcome updates one row: no temporary B-tree for a state test (see
    /// `outbox::sqlite::tests`); there were seven.
    #[tokio::test]
    async fn recording_an_outcome_builds_no_temporary_table() {
        assert_eq!(
            crate::outbox::sqlite::temporary_tables(super::UPDATE_ROW).await,
            0
        );
    }
}
