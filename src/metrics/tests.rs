//! The exposition itself: names, labels and values as Prometheus reads them.

use std::time::Duration;

use super::scrape::render;
use super::*;
use crate::domain::pacing::{Budget, PacingLimit, PacingSnapshot};
use crate::status::{RefusedCount, Snapshot, StateCounts};

fn text(metrics: &Metrics, snapshot: Option<&Snapshot>) -> String {
    let families = metrics.0.as_ref().expect("enabled");
    render(&families.registry, snapshot, 10_000_000).expect("encodes")
}

fn snapshot() -> Snapshot {
    Snapshot {
        counts: StateCounts {
            queued: 3,
            failed: 2,
            ..StateCounts::default()
        },
        oldest_waiting_at: Some(10_000_000 - 90_000),
        heartbeat_at: Some(10_000_000 - 4_500),
        last_delivered_at: None,
        last_error: Some("secret detail".into()),
        last_error_at: None,
        paused_reason: Some("HTTP 401".into()),
        rate_limited_until: Some(10_000_000 + 30_000),
        refused: vec![RefusedCount {
            source: "hubspot".into(),
            reason: "no_email".into(),
            n: 4,
        }],
        database_bytes: Some(4096),
        last_prune_at: Some(9_000_000),
        last_prune_rows: Some(12),
        pacing: PacingSnapshot {
            limit: PacingLimit {
                max_creates: 30,
                window_ms: 3_600_000,
            },
            budget: Budget {
                spent: 30,
                exhausted_until: None,
                next_freed_by: Some(10_000_000 - 3_000_000),
            },
            now: 10_000_000,
            waiting: 3,
            drained_at: Some(10_000_000 + 601_000),
            next_create_at: Some(10_000_000 + 601_000),
        },
    }
}

#[test]
fn counters_carry_their_labels_and_histograms_their_counts() {
    let metrics = Metrics::new(true);
    metrics.webhook("hubspot", 202, Duration::from_millis(3));
    metrics.webhook("hubspot", 202, Duration::from_millis(4));
    metrics.tallyfy_call("create", None, Duration::from_millis(20));
    metrics.crm_read("pipedrive", Some(429), Duration::from_millis(20));
    metrics.delivery(&Err(LeaseLost));
    let out = text(&metrics, None);
    for line in [
        "tallyfy_bridge_webhooks_received_total{source=\"hubspot\",status=\"202\"} 2",
        "tallyfy_bridge_ingest_duration_seconds_count{source=\"hubspot\"} 2",
        "tallyfy_bridge_tallyfy_calls_total{operation=\"create\",status=\"transport\"} 1",
        "tallyfy_bridge_crm_reads_total{crm=\"pipedrive\",status=\"429\"} 1",
        "tallyfy_bridge_deliveries_total{outcome=\"lease_lost\"} 1",
        "tallyfy_bridge_database_ok 0",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(out.ends_with("# EOF\n"), "{out}");
}

#[test]
fn a_commit_counts_its_batch_and_each_events_result() {
    let metrics = Metrics::new(true);
    let stored = Accepted::Stored { id: 1 };
    let duplicate = Accepted::Duplicate { id: 1 };
    metrics.committed(&[
        Ok(stored),
        Ok(stored),
        Ok(duplicate),
        Err(anyhow::anyhow!("disk")),
    ]);
    let out = text(&metrics, None);
    for line in [
        "tallyfy_bridge_events_total{result=\"stored\"} 2",
        "tallyfy_bridge_events_total{result=\"duplicate\"} 1",
        "tallyfy_bridge_events_total{result=\"failed\"} 1",
        "tallyfy_bridge_writer_batch_size_count 1",
        "tallyfy_bridge_writer_batch_size_sum 4.0",
        "tallyfy_bridge_writer_batch_size_bucket{le=\"2.0\"} 0",
        "tallyfy_bridge_writer_batch_size_bucket{le=\"4.0\"} 1",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn the_snapshot_becomes_gauges_and_its_text_fields_stay_out() {
    let out = text(&Metrics::new(true), Some(&snapshot()));
    for line in [
        "tallyfy_bridge_database_ok 1",
        "tallyfy_bridge_outbox_rows{state=\"queued\"} 3",
        "tallyfy_bridge_outbox_rows{state=\"failed\"} 2",
        "tallyfy_bridge_outbox_rows{state=\"cancelled\"} 0",
        "tallyfy_bridge_outbox_oldest_waiting_age_seconds 90.0",
        "tallyfy_bridge_delivery_paused 1.0",
        "tallyfy_bridge_delivery_rate_limited 1.0",
        "tallyfy_bridge_delivery_rate_limited_until_timestamp_seconds 10030.0",
        "tallyfy_bridge_worker_heartbeat_age_seconds 4.5",
        "tallyfy_bridge_refused_items{source=\"hubspot\",reason=\"no_email\"} 4",
        "tallyfy_bridge_refused_items_all 4.0",
        "tallyfy_bridge_database_size_bytes 4096.0",
        "tallyfy_bridge_retention_last_prune_timestamp_seconds 9000.0",
        "tallyfy_bridge_retention_last_prune_rows 12.0",
        "tallyfy_bridge_delivery_create_budget_limit 30.0",
        "tallyfy_bridge_delivery_create_budget_left 0.0",
        "tallyfy_bridge_delivery_next_create_timestamp_seconds 10601.0",
        "tallyfy_bridge_delivery_drain_eta_seconds 601.0",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(
        !out.contains("secret detail") && !out.contains("HTTP 401"),
        "{out}"
    );
}
