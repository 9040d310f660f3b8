//! Prometheus metrics: one registry per [`Application`](crate::Application), so applications in
//! one process (the tests) never share counts. Recording is a labelled atomic add; the gauges
//! that describe stored state are read from the store's `Snapshot` when `/metrics` is scraped.

mod reconcile;
pub mod scrape;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::outcome::{AttemptClass, LeaseLost, Outcome};
use crate::outbox::Accepted;
pub use scrape::{MetricsState, routes};
pub use webhooks::count_webhooks;

/// Every name starts with this (`tallyfy_bridge_webhooks_received_total`).
pub const PREFIX: &str = "tallyfy_bridge";

/// Seconds: 1 ms to 10 s, for webhooks (an fsync) and upstream calls (a round trip).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The handle every recording site holds; cheap to clone. Disabled (`metrics.enabled = false`)
/// it records nothing.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Families>>);

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

struct Families {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    ingest_seconds: Histograms<SourceLabel>,
    events: Family<EventLabels, Counter>,
    batch_size: Histogram,
    deliveries: Family<OutcomeLabel, Counter>,
    tallyfy_calls: Family<CallLabels, Counter>,
    tallyfy_seconds: Histograms<OperationLabel>,
    crm_reads: Family<CrmLabels, Counter>,
    crm_seconds: Histograms<CrmLabel>,
    /// auth: when the Tallyfy token in use expires (s since epoch), 0 when unknown.
    credentials_expiry: Gauge<f64, AtomicU64>,
    reconcile: reconcile::Families,
}

/// An HTTP status as a label: the code as text, `transport` when no answer came back.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Status(Option<u16>);

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(code) => EncodeLabelValue::encode(&code, encoder),
            None => EncodeLabelValue::encode(&"transport", encoder),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    source: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    status: Status,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrmLabels {
    crm: &'static str,
    status: Status,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrmLabel {
    crm: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// A fresh registry when `enabled`, otherwise a handle that records nothing.
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Self(None);
        }
        let mut registry = Registry::with_prefix(PREFIX);
        let families = Families {
            webhooks: Family::default(),
            ingest_seconds: Family::new_with_constructor(latency),
            events: Family::default(),
            // 1, 2, 4 … 1024 events: ingest.max_batch is 512 by default.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            deliveries: Family::default(),
            tallyfy_calls: Family::default(),
            tallyfy_seconds: Family::new_with_constructor(latency),
            crm_reads: Family::default(),
            crm_seconds: Family::new_with_constructor(latency),
            credentials_expiry: Gauge::default(),
            reconcile: reconcile::Families::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhooks_received",
            "Webhook requests answered, by source and HTTP status",
            families.webhooks.clone(),
        );
        registry.register(
            "ingest_duration_seconds",
            "Time from a webhook's arrival to its answer, by source",
            families.ingest_seconds.clone(),
        );
        registry.register(
            "events",
            "Events the writer committed (stored), found already stored (duplicate), did not need (not_needed: an update of a CRM record never refused) or could not commit (failed)",
            families.events.clone(),
        );
        registry.register(
            "writer_batch_size",
            "Events per group commit",
            families.batch_size.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts ended, by outcome",
            families.deliveries.clone(),
        );
        registry.register(
            "tallyfy_calls",
            "Calls to Tallyfy's guest API, by operation and HTTP status (transport: no answer)",
            families.tallyfy_calls.clone(),
        );
        registry.register(
            "tallyfy_call_duration_seconds",
            "Time of a call to Tallyfy, by operation",
            families.tallyfy_seconds.clone(),
        );
        registry.register(
            "crm_reads",
            "Reads of a CRM's API, by CRM and HTTP status (transport: no answer)",
            families.crm_reads.clone(),
        );
        registry.register(
            "crm_read_duration_seconds",
            "Time of a read of a CRM's API, by CRM",
            families.crm_seconds.clone(),
        );
        registry.register(
            "tallyfy_credentials_expiry_timestamp_seconds",
            "When the Tallyfy token in use expires, Unix time (0 when unknown)",
            families.credentials_expiry.clone(),
        );
        families.reconcile.register(&mut registry);
        // Declared at 0, so an alert's `increase()` sees the first one.
        for outcome in OUTCOMES {
            families
                .deliveries
                .get_or_create_owned(&OutcomeLabel { outcome });
        }
        for result in ["stored", "duplicate", "not_needed", "failed"] {
            families.events.get_or_create_owned(&EventLabels { result });
        }
        Self(Some(Arc::new(Families {
            registry,
            ..families
        })))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// One webhook answered with `status` after `elapsed`.
    pub fn webhook(&self, source: &'static str, status: u16, elapsed: Duration) {
        if let Some(f) = &self.0 {
            f.webhooks
                .get_or_create(&WebhookLabels { source, status })
                .inc();
            f.ingest_seconds
                .get_or_create(&SourceLabel { source })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// One group commit and what became of each of its events.
    pub fn committed(&self, results: &[anyhow::Result<Accepted>]) {
        let Some(f) = &self.0 else { return };
        // A commit of refusals alone is no batch of events.
        if results.is_empty() {
            return;
        }
        f.batch_size.observe(results.len() as f64);
        let (mut stored, mut duplicate, mut not_needed, mut failed) = (0, 0, 0, 0);
        for result in results {
            match result {
                Ok(Accepted::Stored { .. }) => stored += 1,
                Ok(Accepted::Duplicate { .. }) => duplicate += 1,
                Ok(Accepted::NotNeeded) => not_needed += 1,
                Err(_) => failed += 1,
            }
        }
        for (result, n) in [
            ("stored", stored),
            ("duplicate", duplicate),
            ("not_needed", not_needed),
            ("failed", failed),
        ] {
            if n > 0 {
                f.events.get_or_create(&EventLabels { result }).inc_by(n);
            }
        }
    }

    /// One delivery attempt ended.
    pub fn delivery(&self, outcome: &Result<Outcome, LeaseLost>) {
        if let Some(f) = &self.0 {
            let outcome = match outcome {
                Ok(outcome) => outcome_label(outcome.class()),
                Err(LeaseLost) => "lease_lost",
            };
            f.deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
        }
    }

    /// One call to Tallyfy (`create` or `find`); `status` is `None` without an answer.
    pub fn tallyfy_call(&self, operation: &'static str, status: Option<u16>, elapsed: Duration) {
        if let Some(f) = &self.0 {
            let status = Status(status);
            f.tallyfy_calls
                .get_or_create(&CallLabels { operation, status })
                .inc();
            f.tallyfy_seconds
                .get_or_create(&OperationLabel { operation })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// auth: the Tallyfy token in use expires at `ms` (`None`: unknown).
    pub fn credentials_expire_at(&self, ms: Option<i64>) {
        if let Some(f) = &self.0 {
            f.credentials_expiry
                .set(ms.map_or(0.0, |ms| ms as f64 / 1000.0));
        }
    }

    /// One read of a CRM's API; `status` is `None` without an answer.
    pub fn crm_read(&self, crm: &'static str, status: Option<u16>, elapsed: Duration) {
        if let Some(f) = &self.0 {
            let status = Status(status);
            f.crm_reads.get_or_create(&CrmLabels { crm, status }).inc();
            f.crm_seconds
                .get_or_create(&CrmLabel { crm })
                .observe(elapsed.as_secs_f64());
        }
    }
}

/// Every `outcome` label value.
const OUTCOMES: [&str; 9] = [
    "delivered",
    "fetched",
    "fetch_failed",
    "retry",
    "rate_limited",
    "paced",
    "paused",
    "failed",
    "lease_lost",
];

/// The attempt log's name for an outcome, as the `outcome` label.
fn outcome_label(class: AttemptClass) -> &'static str {
    match class {
        AttemptClass::Delivered => "delivered",
        AttemptClass::Fetched => "fetched",
        AttemptClass::FetchFailed => "fetch_failed",
        AttemptClass::Retry => "retry",
        AttemptClass::RateLimited => "rate_limited",
        AttemptClass::Paced => "paced",
        AttemptClass::Paused => "paused",
        AttemptClass::Failed => "failed",
    }
}

#[cfg(test)]
mod tests;
