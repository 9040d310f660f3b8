//! Retention's schedule: [`Retention::run_once`] prunes what is old by the application's clock,
//! and [`prune_periodically`] runs it every `retention.every_secs` beside serving.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::configuration::RetentionSettings;
use crate::delivery::policy::Clock;
use crate::outbox::{Pruned, Store};

/// The prune as the application runs it; tests call [`Self::run_once`] with a clock they move.
pub struct Retention {
    store: Arc<dyn Store>,
    policy: RetentionSettings,
    /// The clock delivery reads, so a row's age and its `updated_at` come from the same time.
    clock: Arc<dyn Clock>,
}

impl Retention {
    pub fn new(store: Arc<dyn Store>, policy: RetentionSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy,
            clock,
        }
    }

    /// Deletes everything old enough now, batch by batch; one INFO line when it deleted anything.
    pub async fn run_once(&self) -> anyhow::Result<Pruned> {
        let started = Instant::now();
        let pruned = self.store.prune(self.clock.now_ms(), &self.policy).await?;
        if pruned.rows() > 0 {
            let (wal_bytes_before, wal_bytes_after) = pruned.wal_truncated.unzip();
            tracing::info!(
                outbox_rows = pruned.outbox,
                attempt_logs = pruned.attempts,
                attempted_emails = pruned.attempted_emails,
                refused = pruned.refused,
                audit = pruned.audit,
                batches = pruned.batches,
                elapsed_ms = started.elapsed().as_millis() as u64,
                wal_bytes_before,
                wal_bytes_after,
                "Pruned old rows"
            );
        }
        Ok(pruned)
    }
}

/// Prunes every `retention.every_secs`, the first time one period after start. Its own task, not
/// the checkpointer's: a prune of many rows takes a while, and the WAL must keep being copied
/// into the file meanwhile. Stopping drops a running batch, which rolls back.
pub(super) async fn prune_periodically(retention: Arc<Retention>, stop: CancellationToken) {
    let every = retention.policy.every;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            result = retention.run_once() => if let Err(error) = result {
                tracing::warn!(error = %format!("{error:#}"), "Failed to prune old rows");
            },
        }
    }
}
