//! Pacing within Tallyfy's hourly guest-invite cap: claims bounded by the budget left, one unit
//! spent right before each POST (never for look-ups, ledger hits or CRM reads), and the view of
//! the budget and the backlog's drain that `/status` shows.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::domain::pacing::PacingSnapshot;
use crate::outbox::Claimed;

use super::Worker;
use super::resolve::{Failure, storage_error};

impl Worker {
    /// How many of `limit` rows the budget lets this worker claim at `now`: the units left less
    /// its own attempts that have not spent yet (those of other workers are caught at the
    /// spend). With none left, remembers until when, so the idle loop sleeps instead of polling.
    pub(super) async fn budget_limit(&self, limit: usize, now: i64) -> anyhow::Result<usize> {
        if !self.pacing_announced.swap(true, Ordering::Relaxed)
            && let Err(error) = self.store.announce_pacing(self.pacing).await
        {
            self.pacing_announced.store(false, Ordering::Relaxed);
            return Err(error);
        }
        if self.pacing.unlimited() || limit == 0 {
            return Ok(limit);
        }
        let budget = self.store.create_budget(now, self.pacing).await?;
        let left = usize::try_from(budget.left(self.pacing, now)).unwrap_or(0);
        let left = left.saturating_sub(self.unspent.load(Ordering::Relaxed));
        if left == 0 {
            self.paced_until
                .fetch_max(budget.next_create_at(self.pacing, now), Ordering::Relaxed);
        }
        Ok(limit.min(left))
    }

    /// Spends one unit of the budget for `row`'s create, right before the POST; none left
    /// (another worker or replica spent it) sends the row back to wait, attempt given back.
    pub(super) async fn spend(&self, row: &Claimed) -> Result<(), Failure> {
        if self.pacing.unlimited() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        match self.store.spend_create(now, self.pacing, row.id).await {
            Ok(None) => Ok(()),
            Ok(Some(until)) => {
                self.paced_until.fetch_max(until, Ordering::Relaxed);
                Err(Failure::Paced { until })
            }
            Err(error) => Err(storage_error(error)),
        }
    }

    /// The reason a paced row records.
    pub(super) fn paced_reason(&self, until: i64) -> String {
        format!(
            "waiting for the create budget ({} per {} s) until {}",
            self.pacing.max_creates,
            self.pacing.window_ms / 1000,
            crate::time::rfc3339(until).unwrap_or_default()
        )
    }
}

/// A claimed attempt that has not finished yet, counted against the budget the next claim
/// sees (it may still spend); released when the attempt ends, however it ends.
pub(super) struct Unspent<'a>(&'a AtomicUsize);

impl<'a> Unspent<'a> {
    /// Counts `n` claimed attempts; each releases its own with [`Unspent::one`].
    pub(super) fn claimed(counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn one(counter: &'a AtomicUsize) -> Self {
        Self(counter)
    }
}

impl Drop for Unspent<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/status`'s `delivery.pacing`: the create budget and when the backlog will have drained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PacingView {
    /// Creates per `window_secs` at most, org-wide; 0 = no limit.
    pub max_creates_per_hour: u32,
    pub window_secs: i64,
    /// Creates that may still be sent now (null without a limit).
    pub budget_left: Option<i64>,
    /// When the next create may be sent, RFC 3339 (now while budget is left; null without a
    /// limit).
    pub next_create_at: Option<String>,
    /// Rows not yet delivered, failed or cancelled: each may need a create.
    pub waiting: i64,
    /// Seconds until the last waiting row's create may start if every row needs one (an upper
    /// bound: ledger hits and look-ups that find the guest spend nothing); null without a limit
    /// or a backlog.
    pub drain_eta_secs: Option<f64>,
    /// The same as a time, RFC 3339.
    pub drain_eta_at: Option<String>,
}

impl PacingView {
    pub fn of(snapshot: &PacingSnapshot) -> Self {
        let PacingSnapshot {
            limit,
            budget,
            now,
            waiting,
            drained_at,
            next_create_at,
        } = *snapshot;
        let limited = !limit.unlimited();
        Self {
            max_creates_per_hour: limit.max_creates,
            window_secs: limit.window_ms / 1000,
            budget_left: limited.then(|| budget.left(limit, now)),
            next_create_at: next_create_at.and_then(crate::time::rfc3339),
            waiting,
            drain_eta_secs: drained_at.map(|at| (at - now).max(0) as f64 / 1000.0),
            drain_eta_at: drained_at.and_then(crate::time::rfc3339),
        }
    }
}
