//! The scheduled reconcile: for each source with `reconcile_every_secs` above 0, a run every
//! period (counted from the last run's end as stored, so a restart does not run it early), then
//! the check of its webhook subscription.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Reconciler, RunError, RunRequest};
use crate::ops::audit::AuditNote;
use crate::time::now_ms;

/// The principal scheduled runs are audited as.
pub const SCHEDULE: &str = "schedule";

/// Runs every scheduled source until `stop`; a run going when it fires is abandoned (what it
/// queued is kept, its watermark does not move).
pub async fn reconcile_periodically(reconciler: Arc<Reconciler>, stop: CancellationToken) {
    let tasks: Vec<_> = reconciler
        .sources()
        .into_iter()
        .filter(|(_, every)| !every.is_zero())
        .map(|(source, every)| {
            tokio::spawn(one_source(reconciler.clone(), source, every, stop.clone()))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

async fn one_source(
    reconciler: Arc<Reconciler>,
    source: &'static str,
    every: Duration,
    stop: CancellationToken,
) {
    let every_ms = every.as_millis() as i64;
    loop {
        let due_in = match reconciler.store.reconcile_state(source).await {
            Ok(state) => {
                let now = now_ms();
                state.next_run_at(every_ms, now) - now
            }
            Err(error) => {
                tracing::warn!(source, error = %format!("{error:#}"), "Failed to read when the last reconcile ran");
                every_ms
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(due_in as u64)) => {}
        }
        let request = RunRequest {
            since: None,
            dry_run: false,
            note: AuditNote {
                at: now_ms(),
                request_id: None,
                principal: SCHEDULE,
            },
        };
        let ran = tokio::select! {
            () = stop.cancelled() => return,
            ran = reconciler.run(source, request) => ran,
        };
        let mut wait = Duration::ZERO;
        match ran {
            Ok(_) => {}
            // A run by hand: its end, once stored, sets the next time.
            Err(RunError::Running(_)) => wait = every.min(Duration::from_secs(10)),
            Err(error) => {
                // Not recorded, so the stored end time would make it due at once again.
                tracing::warn!(source, error = %error, "Scheduled reconcile failed");
                wait = every;
            }
        }
        if let Err(error) = reconciler.check_subscription(source).await {
            tracing::warn!(source, error = %format!("{error:#}"), "Failed to record a subscription check");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
