//! `/status`'s `reconcile` section: per source that can be reconciled, its schedule, watermark,
//! last run and the last check of its webhook subscription.

use serde::Serialize;
use utoipa::ToSchema;

use super::{ReconcileState, Reconciler};
use crate::time::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileStatus {
    pub source: &'static str,
    /// Seconds between scheduled runs; 0: by hand only.
    pub every_secs: u64,
    /// A run of this source is going in this process.
    pub running: bool,
    /// Contacts created before this were listed (RFC 3339).
    #[schema(format = DateTime)]
    pub watermark: Option<String>,
    #[schema(format = DateTime)]
    pub last_run_at: Option<String>,
    /// `ok` or `failed`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    /// What the last run listed, queued and kept as refused.
    pub last_listed: i64,
    pub last_queued: i64,
    pub last_refused: i64,
    pub runs: i64,
    pub failures: i64,
    /// When the schedule runs it next (RFC 3339), if it does.
    #[schema(format = DateTime)]
    pub next_run_at: Option<String>,
    pub subscription: Option<SubscriptionStatus>,
}

/// The CRM-side webhook subscription as last checked.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionStatus {
    /// `ok`, `missing`, `inactive`, `wrong_url` or `error` (the check itself failed).
    pub state: String,
    pub detail: Option<String>,
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
}

impl Reconciler {
    /// Every configured source, with what the store holds of it.
    pub async fn status(&self, now: i64) -> anyhow::Result<Vec<ReconcileStatus>> {
        let stored = self.store.reconcile_states().await?;
        let running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Ok(self
            .sources
            .iter()
            .map(|(&source, config)| {
                let state = stored
                    .iter()
                    .find(|s| s.source == source)
                    .cloned()
                    .unwrap_or_default();
                let every_ms = config.every.as_millis() as i64;
                let next = (every_ms > 0).then(|| state.next_run_at(every_ms, now));
                view(
                    source,
                    config.every.as_secs(),
                    running.contains(source),
                    state,
                    next,
                )
            })
            .collect())
    }
}

fn view(
    source: &'static str,
    every_secs: u64,
    running: bool,
    state: ReconcileState,
    next: Option<i64>,
) -> ReconcileStatus {
    ReconcileStatus {
        source,
        every_secs,
        running,
        watermark: state.watermark.and_then(rfc3339),
        last_run_at: state.last_finished_at.and_then(rfc3339),
        last_result: state.last_result,
        last_error: state.last_error,
        last_listed: state.last_seen,
        last_queued: state.last_queued,
        last_refused: state.last_refused,
        runs: state.runs,
        failures: state.failures,
        next_run_at: next.and_then(rfc3339),
        subscription: state.subscription.map(|subscription| SubscriptionStatus {
            state: subscription,
            detail: state.subscription_detail,
            checked_at: state.subscription_checked_at.and_then(rfc3339),
        }),
    }
}
