//! The delivery worker: claims due outbox rows under a lease and creates each email's guest in
//! Tallyfy at most once, pausing on refused credentials and holding off on 429s.

mod attempt;
pub mod pacing;
pub mod policy;
mod recorder;
mod resolve;
mod storage;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::configuration::DeliverySettings;
use crate::crm::CrmClients;
use crate::domain::outcome::{LeaseLost, Outcome};
use crate::domain::pacing::PacingLimit;
use crate::metrics::Metrics;
use crate::outbox::{Claimed, Store};
use crate::tallyfy::TallyfyClient;
use policy::{Clock, RetryPolicy};

/// How often the running worker proves it is alive in `/status` (a write, so not every loop).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// While attempts run, the worker claims again once an eighth of its slots are free (at least
/// one): at concurrency 32, claims of 4 rows or more; at 4, every freed slot at once. A claim
/// costs one statement and one write turn whatever its size, and one per finished attempt made
/// claims the most frequent write at high concurrency.
const REFILL_DIVISOR: usize = 8;

pub struct Worker {
    store: Arc<dyn Store>,
    client: TallyfyClient,
    /// The ledger is per organisation: a guest id of one org means nothing in another.
    org_id: String,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    concurrency: usize,
    lease: Duration,
    /// What an attempt may spend on calls: the lease minus a safety margin.
    call_budget: Duration,
    paused_probe: Duration,
    idle_poll: Duration,
    /// Whether delivery was paused as of this worker's last claim or outcome, so an ordinary
    /// delivery does not have to read the worker state row to know there is nothing to clear.
    paused: AtomicBool,
    recorder: recorder::Recorder,
    /// Read what some CRMs' webhooks only name (HubSpot contacts, Pipedrive organisations).
    crms: CrmClients,
    /// Until when each CRM rate-limited us (ms), by CRM name: reads claimed meanwhile wait
    /// without calling.
    crm_holds: Mutex<HashMap<&'static str, i64>>,
    /// Counts every outcome, whichever loop (`run`, `run_once`) it ended in.
    metrics: Metrics,
    /// The hourly create budget, kept in the database for every worker (`pacing`).
    pacing: PacingLimit,
    /// Whether this worker has recorded its limit for `/status` yet.
    pacing_announced: AtomicBool,
    /// This worker's claimed attempts not yet ended: each may still spend, so a claim leaves
    /// them their units.
    unspent: AtomicUsize,
    /// Until when no unit is left (ms), as last seen: the idle loop sleeps until then instead of
    /// polling for rows it may not claim.
    paced_until: AtomicI64,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        client: TallyfyClient,
        org_id: String,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
        crms: CrmClients,
    ) -> Self {
        let lease = settings.lease;
        Self {
            store,
            client,
            org_id,
            policy: RetryPolicy::from_settings(settings),
            clock,
            concurrency: settings.concurrency,
            lease,
            call_budget: lease.saturating_sub(policy::LEASE_MARGIN),
            paused_probe: settings.paused_probe,
            idle_poll: settings.idle_poll,
            paused: AtomicBool::new(false),
            recorder: recorder::Recorder::default(),
            crms,
            crm_holds: Mutex::default(),
            metrics: Metrics::default(),
            pacing: settings.pacing(),
            pacing_announced: AtomicBool::new(false),
            unspent: AtomicUsize::new(0),
            paced_until: AtomicI64::new(0),
        }
    }

    /// The same worker, counting its outcomes in `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// Claims up to `limit` due rows (fewer while paused or none while rate limited).
    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Nothing is claimed from a lost file: results written there would be lost with it,
        // ledger included.
        if let Some(problem) = self.store.problem() {
            anyhow::bail!(problem);
        }
        let now = self.clock.now_ms();
        let paused_before = self.paused.load(Ordering::Relaxed);
        let gate = self.store.gate().await?;
        // An attempt of this worker that paused delivery while the gate was read knows better
        // than the gate it read: claim nothing now, the loop looks again.
        let paused = gate.paused_reason.is_some();
        if self
            .paused
            .compare_exchange(paused_before, paused, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Ok(Vec::new());
        }
        if gate.rate_limited_until.is_some_and(|until| until > now) {
            return Ok(Vec::new());
        }
        let limit = if gate.paused_reason.is_some() {
            1
        } else {
            limit
        };
        let limit = self.budget_limit(limit, now).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .claim_due(
                &self.org_id,
                now,
                limit,
                now + self.lease.as_millis() as i64,
            )
            .await?;
        pacing::Unspent::claimed(&self.unspent, rows.len());
        Ok(rows)
    }

    /// Updates the worker-wide gate from one outcome.
    async fn learn(&self, outcome: &Result<Outcome, LeaseLost>) -> anyhow::Result<()> {
        self.metrics.delivery(outcome);
        let Ok(outcome) = outcome else { return Ok(()) };
        match outcome {
            // Recorded with the attempt's row (see `deliver`), before the row was due again.
            Outcome::Paused { .. } => Ok(()),
            Outcome::RateLimited { until, .. } => {
                tracing::info!(until, "Tallyfy rate limit: delivery waits");
                Ok(())
            }
            Outcome::Paced {
                until, by_tallyfy, ..
            } => {
                self.paced_until.fetch_max(*until, Ordering::Relaxed);
                let until = crate::time::rfc3339(*until).unwrap_or_default();
                if *by_tallyfy {
                    tracing::info!(%until, "Tallyfy's hourly guest-invite cap is reached: creates wait");
                } else {
                    tracing::debug!(%until, "The create budget is spent: the row waits");
                }
                Ok(())
            }
            // Only an answer from Tallyfy that is not a refusal proves the credentials work
            // again; a ledger hit or a connection failure says nothing about them.
            outcome if !outcome.accepted_by_tallyfy() => Ok(()),
            _ => {
                if self.paused.swap(false, Ordering::Relaxed) {
                    tracing::info!("Tallyfy accepts the credentials again: delivery resumed");
                    self.store.set_paused(None).await?;
                }
                Ok(())
            }
        }
    }

    /// Claims what is due now and delivers it, returning each row's outcome. Tests drive
    /// delivery with this instead of timers.
    pub async fn run_once(&self) -> anyhow::Result<Vec<(i64, Result<Outcome, LeaseLost>)>> {
        let rows = self.claim(self.concurrency).await?;
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let outcomes = join_all(rows.into_iter().map(|row| self.deliver(row))).await;
        for outcome in &outcomes {
            self.learn(outcome).await?;
        }
        Ok(ids.into_iter().zip(outcomes).collect())
    }

    /// Delivers continuously: keeps up to `concurrency` attempts running, wakes at once on
    /// `wake` (an ingest commit), sleeps until the next due row otherwise. On `stop`, claims
    /// nothing more and lets running attempts finish (each is bounded by the call timeouts).
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, stop: CancellationToken) {
        let worker = self;
        if let Err(error) = worker.store.set_paused(None).await {
            tracing::error!(error = %format!("{error:#}"), "Failed to reset the paused state");
        }
        let mut running: JoinSet<Result<Outcome, LeaseLost>> = JoinSet::new();
        let mut last_probe = tokio::time::Instant::now() - worker.paused_probe;
        let mut last_heartbeat: Option<tokio::time::Instant> = None;
        let mut storage = storage::StorageHealth::default();
        loop {
            if stop.is_cancelled() {
                break;
            }
            if last_heartbeat.is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY) {
                // Only a claim says storage works again: a heartbeat can still land in a file
                // that was deleted under us.
                if let Err(error) = worker.store.heartbeat(worker.clock.now_ms()).await {
                    storage.failed("write the heartbeat", &error);
                }
                last_heartbeat = Some(tokio::time::Instant::now());
            }
            let paused = worker.paused.load(Ordering::Relaxed);
            let free = worker.concurrency - running.len();
            let refill = if running.is_empty() {
                1
            } else {
                (worker.concurrency / REFILL_DIVISOR).max(1)
            };
            let may_claim = storage.backing_off().is_none()
                && (!paused || (running.is_empty() && last_probe.elapsed() >= worker.paused_probe));
            if may_claim && free >= refill {
                if paused {
                    last_probe = tokio::time::Instant::now();
                }
                match worker.claim(free).await {
                    Ok(rows) => {
                        storage.worked();
                        for row in rows {
                            let worker = worker.clone();
                            running.spawn(async move { worker.deliver(row).await });
                        }
                    }
                    Err(error) => {
                        storage.failed("claim rows", &error);
                    }
                }
            }
            // Failing storage: wait out the backoff (ingest wake-ups included), then try again.
            let backing_off = storage.backing_off();
            let idle = if let Some(wait) = backing_off {
                wait
            } else if free >= refill && running.len() < worker.concurrency {
                // Slots the claim could not fill: sleep until a row is due. With the slots
                // busy (or too few free to claim), a finishing attempt wakes the loop.
                worker.idle_wait(paused).await
            } else {
                worker.idle_poll
            };
            tokio::select! {
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    let mut paused_now = worker.absorb(joined).await;
                    // Others that finished meanwhile: one claim then refills all their slots.
                    while let Some(joined) = running.try_join_next() {
                        paused_now |= worker.absorb(joined).await;
                    }
                    // The refusal was the first probe: the next one is a probe interval away.
                    if paused_now {
                        last_probe = tokio::time::Instant::now();
                    }
                }
                () = wake.notified(), if backing_off.is_none() => {}
                () = tokio::time::sleep(idle) => {
                    if backing_off.is_some() {
                        // The wait is over: the next storage operation decides what comes next.
                        storage.retry_now();
                    }
                }
                () = stop.cancelled() => {}
            }
        }
        while let Some(joined) = running.join_next().await {
            worker.absorb(joined).await;
        }
        tracing::info!("Delivery worker stopped");
    }

    /// Takes in a finished attempt from the running loop; true when it paused delivery.
    async fn absorb(
        &self,
        joined: Result<Result<Outcome, LeaseLost>, tokio::task::JoinError>,
    ) -> bool {
        match joined {
            Ok(outcome) => {
                if let Err(error) = self.learn(&outcome).await {
                    tracing::error!(error = %format!("{error:#}"), "Failed to record the worker state");
                }
                matches!(outcome, Ok(Outcome::Paused { .. }))
            }
            Err(error) => {
                tracing::error!(%error, "A delivery task failed");
                false
            }
        }
    }

    /// How long to sleep when nothing wakes the worker: until the next row is due, the rate
    /// limit ends or the next probe, never longer than `idle_poll`.
    async fn idle_wait(&self, paused: bool) -> Duration {
        if paused {
            return self
                .paused_probe
                .min(self.idle_poll.max(Duration::from_secs(1)));
        }
        let now = self.clock.now_ms();
        // Rows are due, but the budget lets none be claimed before then.
        let paced = self.paced_until.load(Ordering::Relaxed) - now;
        if paced > 0 {
            return Duration::from_millis(paced as u64)
                .clamp(Duration::from_millis(10), self.idle_poll);
        }
        let next = match self.store.next_due_at().await {
            Ok(Some(at)) => Duration::from_millis((at - now).max(0) as u64),
            _ => self.idle_poll,
        };
        next.clamp(Duration::from_millis(10), self.idle_poll)
    }
}

/// Hides what must not reach logs or `/status`: the local part of email addresses.
pub fn redact(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.find('@') {
            Some(at) if at > 0 && word[at..].contains('.') => {
                let start = word[..at]
                    .rfind(|c: char| !(c.is_alphanumeric() || "._%+-".contains(c)))
                    .map_or(0, |i| i + 1);
                format!("{}***{}", &word[..start], &word[at..])
            }
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_hides_local_parts_and_keeps_the_rest() {
        assert_eq!(
            redact("email: The email 'Ada.L+x@example.com' has already been taken."),
            "email: The email '***@example.com' has already been taken."
        );
        assert_eq!(redact("HTTP 500 at noon"), "HTTP 500 at noon");
    }
}
