//! `GET /metrics`: the counters of this process, then gauges read from the store's `Snapshot`
//! at scrape time (they describe the database, which every replica shares).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};

use super::{Metrics, PREFIX};
use crate::api_error::json_error;
use crate::http_auth::{bearer, secrets_match};
use crate::outbox::Store;
use crate::status::Snapshot;
use crate::time::now_ms;

/// What the OpenMetrics text format is served as; Prometheus asks for it and reads it.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct MetricsState {
    pub metrics: Metrics,
    /// `metrics.token`: unset, `/metrics` is open.
    pub token: Option<SecretString>,
    pub store: Arc<dyn Store>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

/// Prometheus text exposition (OpenMetrics); every metric is in docs/metrics.md.
#[utoipa::path(get, path = "/metrics", tag = "status", security(("metrics_token" = []), ()),
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`metrics.token` is set and was not presented", body = crate::api_error::ErrorBody),
        (status = 404, description = "`metrics.enabled = false`", body = crate::api_error::ErrorBody),
        (status = 500, description = "The exposition could not be encoded", body = crate::api_error::ErrorBody),
    ))]
pub async fn scrape(request: HttpRequest, state: web::Data<MetricsState>) -> HttpResponse {
    let Some(families) = &state.metrics.0 else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are disabled (metrics.enabled)".into(),
            None,
        );
    };
    if let Some(expected) = &state.token {
        let presented = bearer(request.headers()).unwrap_or("");
        if !secrets_match(presented.as_bytes(), expected.expose_secret().as_bytes()) {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication failed".into(),
                None,
            );
        }
    }
    let snapshot = match state.store.problem() {
        Some(problem) => {
            tracing::warn!(%problem, "Metrics scraped without the database's figures");
            None
        }
        None => match state.store.snapshot().await {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "Failed to read the figures for /metrics");
                None
            }
        },
    };
    match render(&families.registry, snapshot.as_ref(), now_ms()) {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(error) => {
            tracing::error!(%error, "Failed to encode /metrics");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
                None,
            )
        }
    }
}

/// The exposition: the process's counters, the stored gauges, the end marker.
pub(super) fn render(
    counters: &Registry,
    snapshot: Option<&Snapshot>,
    now: i64,
) -> Result<String, std::fmt::Error> {
    let mut text = String::with_capacity(8 * 1024);
    encode_registry(&mut text, counters)?;
    encode_registry(&mut text, &stored_gauges(snapshot, now))?;
    encode_eof(&mut text)?;
    Ok(text)
}

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    source: String,
    reason: String,
}

/// A registry made for one scrape, holding what `snapshot` says (only `database_ok` 0 without
/// one): a label that disappears from the database disappears from the next scrape.
fn stored_gauges(snapshot: Option<&Snapshot>, now: i64) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let gauge = FloatGauge::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    gauge(
        &mut registry,
        "database_ok",
        "1 when the database answered this scrape (the gauges below are from it), else 0",
        f64::from(u8::from(snapshot.is_some())),
    );
    let Some(s) = snapshot else { return registry };
    let secs = |ms: i64| ms as f64 / 1000.0;
    let age = |at: Option<i64>| at.map_or(0.0, |at| secs((now - at).max(0)));

    let rows = Family::<StateLabel, Gauge>::default();
    let c = &s.counts;
    for (state, n) in [
        ("queued", c.queued),
        ("in_flight", c.in_flight),
        ("retrying", c.retrying),
        ("delivered", c.delivered),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
    ] {
        rows.get_or_create(&StateLabel { state }).set(n);
    }
    registry.register("outbox_rows", "Outbox rows, by state", rows);
    gauge(
        &mut registry,
        "outbox_oldest_waiting_age_seconds",
        "Age of the oldest row not yet delivered, failed or cancelled (0 when none waits)",
        age(s.oldest_waiting_at),
    );
    gauge(
        &mut registry,
        "delivery_paused",
        "1 while delivery is paused because Tallyfy refused the credentials",
        f64::from(u8::from(s.paused_reason.is_some())),
    );
    let limited_until = s.rate_limited_until.filter(|until| *until > now);
    gauge(
        &mut registry,
        "delivery_rate_limited",
        "1 while a Tallyfy 429 holds delivery back",
        f64::from(u8::from(limited_until.is_some())),
    );
    gauge(
        &mut registry,
        "delivery_rate_limited_until_timestamp_seconds",
        "When the current rate-limit hold ends, Unix time (0 when none)",
        limited_until.map_or(0.0, secs),
    );
    if let Some(at) = s.heartbeat_at {
        gauge(
            &mut registry,
            "worker_heartbeat_age_seconds",
            "Seconds since a delivery worker last proved it is alive (absent before the first)",
            age(Some(at)),
        );
    }
    let refused = Family::<RefusedLabels, Gauge>::default();
    for r in &s.refused {
        refused
            .get_or_create(&RefusedLabels {
                source: r.source.clone(),
                reason: r.reason.clone(),
            })
            .set(r.n);
    }
    registry.register(
        "refused_items",
        "CRM items refused (not queued) and kept, by source and reason",
        refused,
    );
    gauge(
        &mut registry,
        "refused_items_all",
        "CRM items refused and kept, all sources and reasons (0 when none)",
        s.refused.iter().map(|r| r.n).sum::<i64>() as f64,
    );
    if let Some(bytes) = s.database_bytes {
        gauge(
            &mut registry,
            "database_size_bytes",
            "Size of the database on disk",
            bytes as f64,
        );
    }
    pacing_gauges(&mut registry, &s.pacing);
    gauge(
        &mut registry,
        "retention_last_prune_timestamp_seconds",
        "When retention last ran, Unix time (0 before the first run)",
        s.last_prune_at.map_or(0.0, secs),
    );
    gauge(
        &mut registry,
        "retention_last_prune_rows",
        "Rows retention deleted in its last run",
        s.last_prune_rows.unwrap_or(0) as f64,
    );
    registry
}

/// The create budget's gauges (absent without a limit): what is left, when the next create may
/// go and when the backlog will have drained at this pace.
fn pacing_gauges(registry: &mut Registry, p: &crate::domain::pacing::PacingSnapshot) {
    if p.limit.unlimited() {
        return;
    }
    let mut gauge = |name: &str, help: &str, value: f64| {
        let gauge = FloatGauge::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    gauge(
        "delivery_create_budget_limit",
        "Guest creates allowed per window (delivery.max_creates_per_hour)",
        f64::from(p.limit.max_creates),
    );
    gauge(
        "delivery_create_budget_left",
        "Guest creates that may still be sent in the current window",
        p.budget.left(p.limit, p.now) as f64,
    );
    gauge(
        "delivery_next_create_timestamp_seconds",
        "When the next guest create may be sent, Unix time (now while budget is left)",
        p.next_create_at.unwrap_or(p.now) as f64 / 1000.0,
    );
    gauge(
        "delivery_drain_eta_seconds",
        "Seconds until the last waiting row's create may start at this pace (0 when none waits)",
        p.drained_at
            .map_or(0.0, |at| (at - p.now).max(0) as f64 / 1000.0),
    );
}
