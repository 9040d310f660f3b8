//! Reconcile: asks a CRM's API which contacts it created since the last run and queues every
//! one no webhook delivered, keyed by the CRM record, so a contact reaches Tallyfy once whether
//! it came by webhook, by reconcile or both. Runs by hand (`POST /admin/reconcile/{source}`,
//! `tallyfy-bridge reconcile`) and on each source's schedule ([`schedule`]).

pub mod schedule;
mod sink;
pub mod status;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::configuration::SourcesSettings;
use crate::crm::listing::{
    ListStats, Lister, Subscription, SubscriptionState, Subscriptions, Window,
};
use crate::crm::{hubspot, pipedrive, salesforce};
use crate::metrics::Metrics;
use crate::ops::audit::AuditNote;
use crate::outbox::{Store, WriterHandle};
use crate::time::now_ms;
use sink::QueueSink;

/// What the store keeps of one source's reconciles.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ReconcileState {
    pub source: String,
    /// Contacts created before this (ms) have been listed.
    pub watermark: Option<i64>,
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    /// `ok` or `failed`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_seen: i64,
    pub last_queued: i64,
    pub last_refused: i64,
    pub runs: i64,
    pub failures: i64,
    /// The webhook subscription as last checked (`ok`, `missing`, `inactive`, `wrong_url`,
    /// `error`).
    pub subscription: Option<String>,
    pub subscription_detail: Option<String>,
    pub subscription_checked_at: Option<i64>,
}

impl ReconcileState {
    /// When the schedule, one run every `every_ms`, runs this source next as of `now`: a period
    /// after the last run's end, and at once before any.
    pub fn next_run_at(&self, every_ms: i64, now: i64) -> i64 {
        self.last_finished_at
            .map_or(now, |at| (at + every_ms).max(now))
    }
}

/// One run's outcome, as the admin API answers it and the store records it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub source: &'static str,
    /// The window listed: contacts created at or after `since` and before `until`.
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub since: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub until: i64,
    /// Nothing was queued or kept: the counts say what a real run would do.
    pub dry_run: bool,
    /// Contacts the CRM listed in the window.
    pub listed: u64,
    /// Queued now: contacts no webhook (or earlier reconcile) had queued.
    pub queued: u64,
    /// Already queued by a webhook or an earlier reconcile (or refused, and still without an
    /// email): nothing to do.
    pub already: u64,
    /// Kept as refused now: no usable email.
    pub refused: u64,
    pub stats: ListStats,
    /// Why the run stopped early; what was listed before it is queued. The watermark moves
    /// only after a run without error.
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// What starts a run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// From the watermark (less the overlap) when `None`.
    pub since: Option<i64>,
    pub dry_run: bool,
    /// Who asked, for the audit trail.
    pub note: AuditNote,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reconcile is not configured for {0}: its API credentials are not set")]
    NotConfigured(String),
    #[error("a reconcile of {0} is already running")]
    Running(&'static str),
    #[error("{0:#}")]
    Store(anyhow::Error),
}

/// One source's reconcile: its lister, its subscription check and its schedule.
struct Source {
    lister: Box<dyn Lister>,
    subscriptions: Option<Box<dyn Subscriptions>>,
    /// Zero: no scheduled runs.
    every: Duration,
    overlap_ms: i64,
}

/// Every configured source's reconcile, shared by the admin API and the schedule.
pub struct Reconciler {
    store: Arc<dyn Store>,
    writer: WriterHandle,
    metrics: Metrics,
    sources: BTreeMap<&'static str, Source>,
    /// Sources with a run going: one at a time per source.
    running: Mutex<HashSet<&'static str>>,
}

impl Reconciler {
    /// The sources whose API credentials are set; the scheduled subscription check runs for
    /// those with a webhook URL configured.
    pub fn from_settings(
        settings: &SourcesSettings,
        store: Arc<dyn Store>,
        writer: WriterHandle,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let mut reconciler = Self::new(store, writer, metrics);
        let (pd, hs, sf) = (&settings.pipedrive, &settings.hubspot, &settings.salesforce);
        let pd_hooks = match &pd.webhook_url {
            Some(url) => pipedrive::reconcile::subscriptions(pd, url)?,
            None => None,
        };
        let hs_hooks = match &hs.webhook_url {
            Some(url) => hubspot::reconcile::subscriptions(hs, url)?,
            None => None,
        };
        let listers = [
            (
                pipedrive::reconcile::lister(pd, &reconciler.metrics)?,
                pd_hooks,
                (pd.reconcile_every_secs, pd.reconcile_overlap_secs),
            ),
            (
                hubspot::reconcile::lister(hs, &reconciler.metrics)?,
                hs_hooks,
                (hs.reconcile_every_secs, hs.reconcile_overlap_secs),
            ),
            (
                salesforce::lister(sf, &reconciler.metrics)?,
                None,
                (sf.reconcile_every_secs, sf.reconcile_overlap_secs),
            ),
        ];
        for (lister, subscriptions, (every, overlap)) in listers {
            if let Some(lister) = lister {
                reconciler.add(
                    lister,
                    subscriptions,
                    Duration::from_secs(every),
                    Duration::from_secs(overlap),
                );
            }
        }
        Ok(reconciler)
    }

    /// No sources yet; [`Self::add`] adds them (tests add their own listers).
    pub fn new(store: Arc<dyn Store>, writer: WriterHandle, metrics: Metrics) -> Self {
        Self {
            store,
            writer,
            metrics,
            sources: BTreeMap::new(),
            running: Mutex::new(HashSet::new()),
        }
    }

    pub fn add(
        &mut self,
        lister: Box<dyn Lister>,
        subscriptions: Option<Box<dyn Subscriptions>>,
        every: Duration,
        overlap: Duration,
    ) {
        let source = Source {
            lister,
            subscriptions,
            every,
            overlap_ms: overlap.as_millis() as i64,
        };
        self.metrics.declare_reconcile(source.lister.source());
        self.sources.insert(source.lister.source(), source);
    }

    /// The sources that can be reconciled, with their schedule (zero: none).
    pub fn sources(&self) -> Vec<(&'static str, Duration)> {
        self.sources.iter().map(|(n, s)| (*n, s.every)).collect()
    }

    /// Lists `source`'s contacts created since `request.since` (or the watermark less the
    /// overlap; a first run reads back one schedule period plus the overlap) until now, and
    /// queues those not seen; records the run (watermark, counts, audit) unless it is a dry run.
    pub async fn run(&self, source: &str, request: RunRequest) -> Result<RunReport, RunError> {
        let (&name, config) = self
            .sources
            .get_key_value(source)
            .ok_or_else(|| RunError::NotConfigured(source.chars().take(40).collect()))?;
        let _running = Running::claim(&self.running, name)?;
        let started = Instant::now();
        let until = now_ms();
        let state = self
            .store
            .reconcile_state(name)
            .await
            .map_err(RunError::Store)?;
        let since = request.since.unwrap_or_else(|| match state.watermark {
            Some(watermark) => watermark - config.overlap_ms,
            None => until - config.every.as_millis() as i64 - config.overlap_ms,
        });
        let window = Window {
            since: since.min(until),
            until,
        };
        if !request.dry_run {
            self.store
                .start_reconcile(name, until)
                .await
                .map_err(RunError::Store)?;
        }
        let mut sink = QueueSink::new(name, &*self.store, &self.writer, request.dry_run);
        let mut stats = ListStats::default();
        let listed = config
            .lister
            .list_counting(window, &mut sink, &mut stats)
            .await;
        let counts = sink.counts();
        let error = listed.err().map(|error| error.to_string());
        let report = RunReport {
            source: name,
            since: window.since,
            until: window.until,
            dry_run: request.dry_run,
            listed: counts.listed,
            queued: counts.queued,
            already: counts.already,
            refused: counts.refused,
            stats,
            error,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        // A window that starts after the watermark leaves a gap before it: the watermark
        // moves only over a window that covers it.
        let covers = state
            .watermark
            .is_none_or(|watermark| window.since <= watermark);
        let watermark = (report.error.is_none() && covers).then_some(window.until);
        self.store
            .finish_reconcile(&report, watermark, &request.note)
            .await
            .map_err(RunError::Store)?;
        self.metrics.reconcile(&report);
        match &report.error {
            None => tracing::info!(
                source = name,
                listed = report.listed,
                queued = report.queued,
                already = report.already,
                refused = report.refused,
                dry_run = report.dry_run,
                "Reconcile finished"
            ),
            Some(error) => tracing::warn!(
                source = name,
                listed = report.listed,
                queued = report.queued,
                error = error.as_str(),
                "Reconcile stopped early"
            ),
        }
        Ok(report)
    }

    /// Checks `source`'s webhook subscription, when it can, and records what was found: the
    /// state's stored name and the detail.
    pub async fn check_subscription(
        &self,
        source: &str,
    ) -> anyhow::Result<Option<(&'static str, String)>> {
        let Some((&name, config)) = self.sources.get_key_value(source) else {
            return Ok(None);
        };
        let Some(subscriptions) = &config.subscriptions else {
            return Ok(None);
        };
        let (state, detail) = match subscriptions.check().await {
            Ok(found) => (subscription_state(&found), found.detail),
            Err(error) => ("error", error.to_string()),
        };
        self.store
            .record_subscription(name, state, &detail, now_ms())
            .await?;
        self.metrics.subscription(name, state == "ok");
        if state != "ok" {
            tracing::warn!(
                source = name,
                state,
                detail = detail.as_str(),
                "The CRM's webhook subscription does not point at this bridge: run `tallyfy-bridge connect`"
            );
        }
        Ok(Some((state, detail)))
    }
}

/// The stored name of a subscription state.
pub fn subscription_state(found: &Subscription) -> &'static str {
    match found.state {
        SubscriptionState::Ok => "ok",
        SubscriptionState::Missing => "missing",
        SubscriptionState::Inactive => "inactive",
        SubscriptionState::WrongUrl => "wrong_url",
    }
}

/// A source's run slot, given back when the run ends (or its future is dropped).
struct Running<'a> {
    set: &'a Mutex<HashSet<&'static str>>,
    source: &'static str,
}

impl<'a> Running<'a> {
    fn claim(
        set: &'a Mutex<HashSet<&'static str>>,
        source: &'static str,
    ) -> Result<Self, RunError> {
        let mut running = set.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !running.insert(source) {
            return Err(RunError::Running(source));
        }
        Ok(Self { set, source })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self
            .set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.remove(self.source);
    }
}

#[cfg(test)]
mod tests;
