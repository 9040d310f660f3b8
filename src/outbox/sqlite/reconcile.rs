//! Reconcile's bookkeeping: each source's watermark, last run and subscription check
//! (`reconcile_state`), written with the run's audit entry in one transaction.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::{AssertSqlSafe, SqlitePool};

use super::{admin, records};
use crate::ops::audit::AuditNote;
use crate::outbox::RecordState;
use crate::reconcile::{ReconcileState, RunReport};

pub(super) async fn record_states(
    pool: &SqlitePool,
    source: &str,
    ids: &[String],
) -> anyhow::Result<HashMap<String, RecordState>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conn = pool.acquire().await.context("Failed to read CRM records")?;
    let keys: Vec<(&str, &str)> = ids.iter().map(|id| (source, id.as_str())).collect();
    let states = records::states(&mut conn, &keys).await?;
    Ok(states
        .into_iter()
        .map(|((_, id), state)| (id.to_owned(), state))
        .collect())
}

const COLUMNS: &str = "source, watermark, last_started_at, last_finished_at, last_result, \
    last_error, last_seen, last_queued, last_refused, runs, failures, subscription, \
    subscription_detail, subscription_checked_at";

pub(super) async fn state(pool: &SqlitePool, source: &str) -> anyhow::Result<ReconcileState> {
    let sql = format!("SELECT {COLUMNS} FROM reconcile_state WHERE source = ?1");
    let found: Option<ReconcileState> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(source)
        .fetch_optional(pool)
        .await
        .context("Failed to read the reconcile state")?;
    Ok(found.unwrap_or_else(|| ReconcileState {
        source: source.to_owned(),
        ..ReconcileState::default()
    }))
}

pub(super) async fn states(pool: &SqlitePool) -> anyhow::Result<Vec<ReconcileState>> {
    let sql = format!("SELECT {COLUMNS} FROM reconcile_state ORDER BY source");
    sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .context("Failed to read the reconcile states")
}

pub(super) async fn start(pool: &SqlitePool, source: &str, at: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reconcile_state (source, last_started_at) VALUES (?1, ?2)
         ON CONFLICT (source) DO UPDATE SET last_started_at = excluded.last_started_at",
    )
    .bind(source)
    .bind(at)
    .execute(pool)
    .await
    .context("Failed to record a reconcile's start")?;
    Ok(())
}

pub(super) async fn finish(
    pool: &SqlitePool,
    report: &RunReport,
    watermark: Option<i64>,
    note: &AuditNote,
) -> anyhow::Result<()> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin a transaction")?;
    if !report.dry_run {
        let failed = report.error.is_some();
        sqlx::query(
            "INSERT INTO reconcile_state (source) VALUES (?1) ON CONFLICT (source) DO NOTHING",
        )
        .bind(report.source)
        .execute(&mut *tx)
        .await
        .context("Failed to record a reconcile")?;
        sqlx::query(
            "UPDATE reconcile_state SET
                 watermark = coalesce(?2, watermark), last_finished_at = ?3, last_result = ?4,
                 last_error = ?5, last_seen = ?6, last_queued = ?7, last_refused = ?8,
                 runs = runs + 1, failures = failures + ?9
             WHERE source = ?1",
        )
        .bind(report.source)
        .bind(watermark)
        .bind(note.at)
        .bind(if failed { "failed" } else { "ok" })
        .bind(report.error.as_deref())
        .bind(report.listed as i64)
        .bind(report.queued as i64)
        .bind(report.refused as i64)
        .bind(i64::from(failed))
        .execute(&mut *tx)
        .await
        .context("Failed to record a reconcile")?;
    }
    let window = serde_json::json!({
        "since": crate::time::rfc3339(report.since),
        "until": crate::time::rfc3339(report.until),
        "listed": report.listed,
        "error": report.error,
    })
    .to_string();
    let action = if report.dry_run {
        "reconcile_dry_run"
    } else {
        "reconcile"
    };
    admin::audit(
        &mut tx,
        note,
        action,
        Some(report.source),
        Some(&window),
        report.queued,
    )
    .await?;
    tx.commit().await.context("Failed to record a reconcile")?;
    Ok(())
}

pub(super) async fn subscription(
    pool: &SqlitePool,
    source: &str,
    state: &str,
    detail: &str,
    at: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reconcile_state (source, subscription, subscription_detail,
                                      subscription_checked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source) DO UPDATE SET subscription = excluded.subscription,
             subscription_detail = excluded.subscription_detail,
             subscription_checked_at = excluded.subscription_checked_at",
    )
    .bind(source)
    .bind(state)
    .bind(detail)
    .bind(at)
    .execute(pool)
    .await
    .context("Failed to record a subscription check")?;
    Ok(())
}
