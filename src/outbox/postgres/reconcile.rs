//! Reconcile's bookkeeping on PostgreSQL: each source's watermark, last run and subscription
//! check (`reconcile_state`), written with the run's audit entry in one transaction.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::{AssertSqlSafe, PgPool};

use super::{admin, records};
use crate::ops::audit::AuditNote;
use crate::outbox::RecordState;
use crate::reconcile::{ReconcileState, RunReport};

pub(super) async fn record_states(
    pool: &PgPool,
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

pub(super) async fn state(pool: &PgPool, source: &str) -> anyhow::Result<ReconcileState> {
    let sql = format!("SELECT {COLUMNS} FROM reconcile_state WHERE source = $1");
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

pub(super) async fn states(pool: &PgPool) -> anyhow::Result<Vec<ReconcileState>> {
    let sql = format!("SELECT {COLUMNS} FROM reconcile_state ORDER BY source");
    sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .context("Failed to read the reconcile states")
}

/// One statement: `ON CONFLICT` makes the first start of a source by two replicas at once one
/// row, the second one's start then overwriting the first's.
pub(super) async fn start(pool: &PgPool, source: &str, at: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reconcile_state (source, last_started_at) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE SET last_started_at = excluded.last_started_at",
    )
    .bind(source)
    .bind(at)
    .execute(pool)
    .await
    .context("Failed to record a reconcile's start")?;
    Ok(())
}

/// The run's result and its audit line, in one transaction. Safe across replicas: the
/// `ON CONFLICT DO NOTHING` insert makes sure the source's row exists (waiting for a concurrent
/// insert of it to commit), and the UPDATE then locks that row, computing `runs + 1` and
/// `failures + …` from the latest committed version (READ COMMITTED re-reads a row it waited
/// for), so two runs finishing at once both count.
pub(super) async fn finish(
    pool: &PgPool,
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
            "INSERT INTO reconcile_state (source) VALUES ($1) ON CONFLICT (source) DO NOTHING",
        )
        .bind(report.source)
        .execute(&mut *tx)
        .await
        .context("Failed to record a reconcile")?;
        sqlx::query(
            "UPDATE reconcile_state SET
                 watermark = coalesce($2, watermark), last_finished_at = $3, last_result = $4,
                 last_error = $5, last_seen = $6, last_queued = $7, last_refused = $8,
                 runs = runs + 1, failures = failures + $9
             WHERE source = $1",
        )
        .bind(report.source)
        .bind(watermark)
        .bind(note.at)
        .bind(if failed { "failed" } else { "ok" })
        .bind(report.error.as_deref())
        .bind(count(report.listed))
        .bind(count(report.queued))
        .bind(count(report.refused))
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

/// A report's count as the BIGINT column stores it.
fn count<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// One statement (`ON CONFLICT` upsert): the latest check of any replica wins.
pub(super) async fn subscription(
    pool: &PgPool,
    source: &str,
    state: &str,
    detail: &str,
    at: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reconcile_state (source, subscription, subscription_detail,
                                      subscription_checked_at)
         VALUES ($1, $2, $3, $4)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(source: &'static str, dry_run: bool, error: Option<&str>) -> RunReport {
        RunReport {
            source,
            since: 1_000,
            until: 2_000,
            dry_run,
            listed: 5,
            queued: 3,
            already: 1,
            refused: 1,
            stats: Default::default(),
            error: error.map(str::to_owned),
            duration_ms: 7,
        }
    }

    fn note(at: i64) -> AuditNote {
        AuditNote {
            at,
            request_id: None,
            principal: "schedule",
        }
    }

    #[tokio::test]
    async fn record_states_names_queued_and_refused_records_of_the_source() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        assert!(
            record_states(&pool, "hubspot", &[])
                .await
                .expect("empty")
                .is_empty()
        );
        for sql in [
            "INSERT INTO crm_records (source, record_id, outbox_id, came_by, seen_at)
             VALUES ('hubspot', '1', 41, 'webhook', 0), ('pipedrive', '2', 42, 'webhook', 0)",
            "INSERT INTO refused (source, record_id, reason, field, refused_at)
             VALUES ('hubspot', '3', 'missing_email', 'email', 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        let ids: Vec<String> = ["1", "2", "3", "4"].map(String::from).to_vec();
        let states = record_states(&pool, "hubspot", &ids).await.expect("states");
        // A record never seen may be absent or a default state (SQLite's query answers every
        // key): both mean "neither queued nor refused". Pipedrive's record 2 is not hubspot's.
        let got: Vec<RecordState> = ids
            .iter()
            .map(|id| states.get(id).copied().unwrap_or_default())
            .collect();
        let queued = RecordState {
            outbox_id: Some(41),
            open_refusal: false,
        };
        let refused = RecordState {
            outbox_id: None,
            open_refusal: true,
        };
        let never = RecordState::default();
        assert_eq!(got, [queued, never, refused, never], "{states:?}");
    }

    #[tokio::test]
    async fn a_source_never_run_has_an_empty_state() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let found = state(&pool, "hubspot").await.expect("state");
        assert_eq!(
            found,
            ReconcileState {
                source: "hubspot".into(),
                ..ReconcileState::default()
            }
        );
        assert!(states(&pool).await.expect("states").is_empty());
    }

    /// Start, a failed run (the watermark kept), an ok run (moved), a dry run (audited only),
    /// and a subscription check, each kept per source; every run audited.
    #[tokio::test]
    async fn runs_are_counted_per_source_and_audited() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        start(&pool, "hubspot", 100).await.expect("start");
        finish(
            &pool,
            &report("hubspot", false, Some("boom")),
            Some(900),
            &note(150),
        )
        .await
        .expect("finish");
        let after_failure = state(&pool, "hubspot").await.expect("state");
        assert_eq!(
            (
                after_failure.last_started_at,
                after_failure.last_finished_at,
                after_failure.last_result.as_deref(),
                after_failure.last_error.as_deref(),
                after_failure.runs,
                after_failure.failures,
            ),
            (Some(100), Some(150), Some("failed"), Some("boom"), 1, 1)
        );
        // The caller passes no watermark after a failure; here one run ok moves it.
        start(&pool, "hubspot", 200).await.expect("start");
        finish(
            &pool,
            &report("hubspot", false, None),
            Some(1_900),
            &note(250),
        )
        .await
        .expect("finish");
        finish(&pool, &report("hubspot", false, None), None, &note(260))
            .await
            .expect("finish");
        finish(&pool, &report("pipedrive", true, None), Some(5), &note(270))
            .await
            .expect("dry run");
        subscription(&pool, "pipedrive", "missing", "no webhook", 300)
            .await
            .expect("subscription");
        subscription(&pool, "hubspot", "ok", "", 301)
            .await
            .expect("subscription");

        let all = states(&pool).await.expect("states");
        let sources: Vec<&str> = all.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources, ["hubspot", "pipedrive"]);
        let hubspot = &all[0];
        assert_eq!(
            (
                hubspot.watermark,
                hubspot.last_started_at,
                hubspot.last_finished_at,
                hubspot.last_result.as_deref(),
                hubspot.last_error.as_deref(),
            ),
            (Some(1_900), Some(200), Some(260), Some("ok"), None)
        );
        assert_eq!(
            (hubspot.last_seen, hubspot.last_queued, hubspot.last_refused),
            (5, 3, 1)
        );
        assert_eq!((hubspot.runs, hubspot.failures), (3, 1));
        assert_eq!(hubspot.subscription.as_deref(), Some("ok"));
        let pipedrive = &all[1];
        assert_eq!(
            (pipedrive.runs, pipedrive.watermark),
            (0, None),
            "a dry run keeps nothing"
        );
        assert_eq!(
            (
                pipedrive.subscription.as_deref(),
                pipedrive.subscription_detail.as_deref(),
                pipedrive.subscription_checked_at,
            ),
            (Some("missing"), Some("no webhook"), Some(300))
        );

        let audit: Vec<(String, Option<String>, i64, String)> = sqlx::query_as(
            "SELECT action, target, affected, principal FROM admin_audit ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .expect("audit");
        let actions: Vec<&str> = audit.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(
            actions,
            ["reconcile", "reconcile", "reconcile", "reconcile_dry_run"]
        );
        assert!(
            audit.iter().all(|a| a.2 == 3 && a.3 == "schedule"),
            "{audit:?}"
        );
        assert_eq!(audit[3].1.as_deref(), Some("pipedrive"));
        let window: String =
            sqlx::query_scalar("SELECT filter FROM admin_audit ORDER BY id LIMIT 1")
                .fetch_one(&pool)
                .await
                .expect("window");
        let window: serde_json::Value = serde_json::from_str(&window).expect("json");
        assert_eq!(
            (window["listed"].as_u64(), window["error"].as_str()),
            (Some(5), Some("boom"))
        );
    }

    /// Two replicas finishing runs of one new source at once: one row, both runs counted.
    #[tokio::test]
    async fn concurrent_finishes_of_a_new_source_both_count() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let (ok, failed) = (
            report("hubspot", false, None),
            report("hubspot", false, Some("x")),
        );
        let (one, two) = (note(1), note(2));
        let (a, b) = tokio::join!(
            finish(&pool, &ok, Some(10), &one),
            finish(&pool, &failed, None, &two)
        );
        a.expect("finish");
        b.expect("finish");
        let found = state(&pool, "hubspot").await.expect("state");
        assert_eq!(
            (found.runs, found.failures, found.watermark),
            (2, 1, Some(10))
        );
    }
}
