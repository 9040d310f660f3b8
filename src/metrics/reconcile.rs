//! Reconcile's metrics: runs by result, contacts by what became of them, when each source last
//! reconciled without error, and whether its webhook subscription was found pointing here.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Metrics, SourceLabel};
use crate::reconcile::RunReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    source: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContactLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Default)]
pub(super) struct Families {
    runs: Family<RunLabels, Counter>,
    contacts: Family<ContactLabels, Counter>,
    last_success: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    subscription_ok: Family<SourceLabel, Gauge>,
}

impl Families {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "reconcile_runs",
            "Reconcile runs, by source and result (ok, failed, dry_run)",
            self.runs.clone(),
        );
        registry.register(
            "reconcile_contacts",
            "Contacts a reconcile listed, by source and outcome (queued: no webhook had; already: seen before; refused: no usable email)",
            self.contacts.clone(),
        );
        registry.register(
            "reconcile_last_success_timestamp_seconds",
            "When a reconcile of the source last finished without error, Unix time",
            self.last_success.clone(),
        );
        registry.register(
            "reconcile_subscription_ok",
            "1 when the last check found the CRM's webhook subscription active and pointing at this bridge, else 0",
            self.subscription_ok.clone(),
        );
    }
}

impl Metrics {
    /// A source that can be reconciled: its run counts exist at 0 from the start, so an
    /// alert's `increase()` sees the first failure.
    pub fn declare_reconcile(&self, source: &'static str) {
        if let Some(f) = &self.0 {
            for result in ["ok", "failed"] {
                f.reconcile
                    .runs
                    .get_or_create(&RunLabels { source, result });
            }
        }
    }

    /// One finished reconcile.
    pub fn reconcile(&self, report: &RunReport) {
        let Some(f) = &self.0 else { return };
        let source = report.source;
        let result = match (&report.error, report.dry_run) {
            (Some(_), _) => "failed",
            (None, true) => "dry_run",
            (None, false) => "ok",
        };
        f.reconcile
            .runs
            .get_or_create(&RunLabels { source, result })
            .inc();
        if report.dry_run {
            return;
        }
        for (outcome, n) in [
            ("queued", report.queued),
            ("already", report.already),
            ("refused", report.refused),
        ] {
            f.reconcile
                .contacts
                .get_or_create(&ContactLabels { source, outcome })
                .inc_by(n);
        }
        if report.error.is_none() {
            f.reconcile
                .last_success
                .get_or_create(&SourceLabel { source })
                .set(report.until as f64 / 1000.0);
        }
    }

    /// A check of `source`'s webhook subscription.
    pub fn subscription(&self, source: &'static str, ok: bool) {
        if let Some(f) = &self.0 {
            f.reconcile
                .subscription_ok
                .get_or_create(&SourceLabel { source })
                .set(i64::from(ok));
        }
    }
}
