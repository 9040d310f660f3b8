//! The delivery worker's SQL: claiming due rows under a lease, the guest ledger, and recording
//! an attempt's result (ledger, row state and attempt log in one transaction).

use anyhow::Context;
use sqlx::SqlitePool;

/// A row the caller now owns until `lease_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub email: String,
    pub payload: String,
    /// This attempt's number (already persisted): above 1 means an earlier attempt may have
    /// reached Tallyfy. It is also the fencing token for recording the result.
    pub attempts: i64,
    pub received_at: i64,
}

/// ?1 now, ?2 how many, ?3 look-ahead window, ?4 lease end. Index-only: see the plan test.
const CLAIM: &str = "WITH candidates AS (
         SELECT * FROM (
             SELECT id, email, next_attempt_at AS due_at FROM outbox
             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?3)
         UNION ALL
         SELECT * FROM (
             SELECT id, email, lease_until AS due_at FROM outbox
             WHERE state = 'in_flight' AND lease_until <= ?1
             ORDER BY lease_until LIMIT ?3)
     ),
     picked AS (
         SELECT min(c.id) AS id, min(c.due_at) AS due_at FROM candidates c
         WHERE NOT EXISTS (
             SELECT 1 FROM outbox b
             WHERE b.email = c.email AND b.state IN ('in_flight', 'retrying', 'failed')
               AND b.state = 'in_flight' AND b.lease_until > ?1)
         GROUP BY c.email
         ORDER BY due_at
         LIMIT ?2
     )
     UPDATE outbox
     SET state = 'in_flight', attempts = attempts + 1, lease_until = ?4, updated_at = ?1
     WHERE id IN (SELECT id FROM picked)
     RETURNING id, email, payload, attempts, received_at";

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
pub async fn ledger_lookup(
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

/// True when another row of this email was attempted and not delivered (in flight, retrying or
/// failed): its create may have reached Tallyfy, so this delivery must look the guest up before
/// creating it. (A delivered row put its id in the ledger, which is checked first.) The state
/// list is the `outbox_email_attempted` index's, so the query uses that index.
pub async fn email_attempted_before(
    pool: &SqlitePool,
    email: &str,
    except_id: i64,
) -> anyhow::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE email = ?1 AND id <> ?2
             AND state IN ('in_flight', 'retrying', 'failed'))",
    )
    .bind(email)
    .bind(except_id)
    .fetch_one(pool)
    .await
    .context("Failed to read earlier attempts for an email")
}

/// How an attempt ends for its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Delivered {
        guest_id: String,
        /// "ledger", "created", "found" or "existing".
        learned_by: &'static str,
    },
    /// Back to `retrying` at `at`; `refund` gives the attempt back (429, credentials refused).
    Retry {
        at: i64,
        refund: bool,
        error: String,
    },
    Failed {
        error: String,
    },
    /// The contact's email was fetched from its CRM: the row becomes an ordinary one for that
    /// email, due now, and the attempt is given back (Tallyfy was not called).
    Resolved {
        email: String,
        payload: String,
    },
}

impl Resolution {
    /// The row's error text, for the attempt log and `last_error`.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered { .. } | Self::Resolved { .. } => None,
            Self::Retry { error, .. } | Self::Failed { error } => Some(error),
        }
    }
}

/// One line of the attempt log.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<u16>,
    pub outcome: &'static str,
}

/// One attempt's result, for [`record`].
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub row: Claimed,
    pub resolution: Resolution,
    pub log: AttemptLog,
    pub now: i64,
    /// What the attempt taught every worker, written before the row becomes due again.
    pub gate: Option<GateChange>,
}

/// A change to what stops all delivery, learned by one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateChange {
    /// Tallyfy refused the credentials: delivery pauses, with this reason.
    Pause(String),
    /// Tallyfy's 429: nothing is sent before this time (ms).
    HoldUntil(i64),
}

/// Writes attempts' results in one transaction: concurrent attempts share one commit. For each,
/// the ledger entry is written even if the lease was lost (the guest exists either way; an
/// existing entry wins and becomes the row's id); the row itself only changes if the attempt
/// still owns it, which is what the returned flags say. On error nothing is written.
pub async fn record(
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
    for change in results.iter().filter_map(|r| r.gate.as_ref()) {
        let update = match change {
            GateChange::Pause(reason) => {
                sqlx::query("UPDATE worker_state SET paused_reason = ?1 WHERE id = 1").bind(reason)
            }
            GateChange::HoldUntil(until) => sqlx::query(
                "UPDATE worker_state SET rate_limited_until = max(coalesce(rate_limited_until, 0), ?1) WHERE id = 1",
            )
            .bind(until),
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
        .filter(|r| matches!(r.resolution, Resolution::Delivered { .. }))
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
        .find_map(|r| Some((r.resolution.error()?, r.now)));
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
    tx: &mut sqlx::SqliteConnection,
    org_id: &str,
    result: &AttemptResult,
) -> anyhow::Result<bool> {
    let AttemptResult {
        row,
        resolution,
        log,
        now,
        gate: _,
    } = result;
    let now = *now;
    let owned = match resolution {
        Resolution::Delivered {
            guest_id,
            learned_by,
        } => {
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
            let updated = sqlx::query(
                "UPDATE outbox
                 SET state = 'delivered', lease_until = NULL, delivered_at = ?3, updated_at = ?3,
                     last_error = NULL,
                     guest_id = (SELECT guest_id FROM guest_ledger WHERE org_id = ?4 AND email = outbox.email)
                 WHERE id = ?1 AND state = 'in_flight' AND attempts = ?2",
            )
            .bind(row.id)
            .bind(row.attempts)
            .bind(now)
            .bind(org_id)
            .execute(&mut *tx)
            .await
            .context("Failed to mark a row delivered")?;
            updated.rows_affected() == 1
        }
        Resolution::Retry { at, refund, error } => {
            let updated = sqlx::query(
                "UPDATE outbox
                 SET state = 'retrying', lease_until = NULL, next_attempt_at = ?3, updated_at = ?4,
                     attempts = attempts - ?5, last_error = ?6
                 WHERE id = ?1 AND state = 'in_flight' AND attempts = ?2",
            )
            .bind(row.id)
            .bind(row.attempts)
            .bind(at)
            .bind(now)
            .bind(i64::from(*refund))
            .bind(error)
            .execute(&mut *tx)
            .await
            .context("Failed to schedule a retry")?;
            updated.rows_affected() == 1
        }
        Resolution::Failed { error } => {
            let updated = sqlx::query(
                "UPDATE outbox
                 SET state = 'failed', lease_until = NULL, updated_at = ?3, last_error = ?4
                 WHERE id = ?1 AND state = 'in_flight' AND attempts = ?2",
            )
            .bind(row.id)
            .bind(row.attempts)
            .bind(now)
            .bind(error)
            .execute(&mut *tx)
            .await
            .context("Failed to mark a row failed")?;
            updated.rows_affected() == 1
        }
        Resolution::Resolved { email, payload } => {
            let updated = sqlx::query(
                "UPDATE outbox
                 SET state = 'queued', email = ?3, payload = ?4, lease_until = NULL,
                     next_attempt_at = ?5, updated_at = ?5, attempts = attempts - 1,
                     last_error = NULL
                 WHERE id = ?1 AND state = 'in_flight' AND attempts = ?2",
            )
            .bind(row.id)
            .bind(row.attempts)
            .bind(email)
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("Failed to record a fetched contact")?;
            updated.rows_affected() == 1
        }
    };
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, http_status, outcome, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(row.id)
    .bind(row.attempts)
    .bind(log.started_at)
    .bind(log.duration_ms)
    .bind(log.http_status.map(i64::from))
    .bind(log.outcome)
    // The error text is the resolution's own, so the log cannot disagree with the row.
    .bind(resolution.error())
    .execute(&mut *tx)
    .await
    .context("Failed to write the attempt log")?;
    Ok(owned)
}

/// What stops the worker from claiming: credentials refused, or Tallyfy's rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Gate {
    pub paused_reason: Option<String>,
    pub rate_limited_until: Option<i64>,
}

pub async fn gate(pool: &SqlitePool) -> anyhow::Result<Gate> {
    sqlx::query_as("SELECT paused_reason, rate_limited_until FROM worker_state WHERE id = 1")
        .fetch_one(pool)
        .await
        .context("Failed to read the worker state")
}

pub async fn set_paused(pool: &SqlitePool, reason: Option<&str>) -> anyhow::Result<()> {
    sqlx::query("UPDATE worker_state SET paused_reason = ?1 WHERE id = 1")
        .bind(reason)
        .execute(pool)
        .await
        .context("Failed to record the paused state")?;
    Ok(())
}

pub async fn heartbeat(pool: &SqlitePool, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE worker_state SET heartbeat_at = ?1 WHERE id = 1")
        .bind(now)
        .execute(pool)
        .await
        .context("Failed to write the worker heartbeat")?;
    Ok(())
}

/// When the next row becomes due (a retry time or a lease end), if any is waiting.
pub async fn next_due_at(pool: &SqlitePool) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT min(t) FROM (
             SELECT min(next_attempt_at) AS t FROM outbox WHERE state IN ('queued', 'retrying')
             UNION ALL
             SELECT min(lease_until) FROM outbox WHERE state = 'in_flight')",
    )
    .fetch_one(pool)
    .await
    .context("Failed to read the next due time")
}

/// One outbox row as operators see it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct DeliveryView {
    pub id: i64,
    pub source: String,
    pub event_id: Option<String>,
    pub email: String,
    pub state: String,
    pub attempts: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    pub next_attempt_at: i64,
    #[serde(serialize_with = "crate::time::serialize_opt_ms")]
    pub lease_until: Option<i64>,
    pub guest_id: Option<String>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    pub received_at: i64,
    #[serde(serialize_with = "crate::time::serialize_opt_ms")]
    pub delivered_at: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AttemptView {
    pub attempt: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
}

pub async fn delivery(
    pool: &SqlitePool,
    id: i64,
) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>> {
    let row: Option<DeliveryView> = sqlx::query_as(
        "SELECT id, source, event_id, email, state, attempts, next_attempt_at, lease_until,
                guest_id, last_error, received_at, delivered_at
         FROM outbox WHERE id = ?1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read a delivery")?;
    let Some(row) = row else { return Ok(None) };
    let attempts = sqlx::query_as(
        "SELECT attempt, started_at, duration_ms, http_status, outcome, error
         FROM delivery_attempts WHERE outbox_id = ?1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("Failed to read a delivery's attempts")?;
    Ok(Some((row, attempts)))
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct LedgerEntry {
    pub org_id: String,
    pub email: String,
    pub guest_id: String,
    pub outbox_id: i64,
    pub learned_by: String,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    pub created_at: i64,
}

pub async fn ledger_entry(
    pool: &SqlitePool,
    org_id: &str,
    email: &str,
) -> anyhow::Result<Option<LedgerEntry>> {
    sqlx::query_as(
        "SELECT org_id, email, guest_id, outbox_id, learned_by, created_at
         FROM guest_ledger WHERE org_id = ?1 AND email = ?2",
    )
    .bind(org_id)
    .bind(email)
    .fetch_optional(pool)
    .await
    .context("Failed to read the guest ledger")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim runs on every worker wake-up; a `SCAN outbox` would make it slower with every
    /// delivered row kept.
    #[tokio::test]
    async fn the_claim_reads_only_indexes() {
        let detail = crate::outbox::query_plan(CLAIM).await;
        assert!(
            !detail.iter().any(|d| d.starts_with("SCAN outbox")),
            "{detail:?}"
        );
        for index in ["outbox_due", "outbox_leases", "outbox_email_attempted"] {
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index}: {detail:?}"
            );
        }
    }
}
