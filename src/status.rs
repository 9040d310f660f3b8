//! Read-only views for operators and orchestrators: `/status`, `/health/live`, `/health/ready`.
//! Never shows secrets; errors come from the worker already redacted.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::api_error::json_error;
use crate::outbox::{Store, WriterHandle};
use crate::time::now_ms;

pub struct StatusState {
    /// `/status` and readiness fail while it reports a problem (a deleted or replaced file).
    pub store: Arc<dyn Store>,
    /// Readiness asks whether its commits have been failing.
    pub writer: WriterHandle,
    pub started: Instant,
    /// The webhook paths this deployment accepts (the canonical one and configured CRMs).
    pub webhooks: Vec<String>,
}

/// Rows per state.
#[derive(Debug, Default, Clone, serde::Serialize, PartialEq, Eq)]
pub struct StateCounts {
    pub queued: i64,
    pub in_flight: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// The figures `/status` shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub counts: StateCounts,
    /// When the oldest event not yet delivered or failed arrived (ms since epoch).
    pub oldest_waiting_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub paused_reason: Option<String>,
    pub rate_limited_until: Option<i64>,
    /// CRM items not queued and still kept, per source and reason (retention's pruning of old
    /// refusals lowers these counts too).
    pub refused: Vec<RefusedCount>,
    /// The database's size on disk, where the backend knows it.
    pub database_bytes: Option<i64>,
    /// Retention's last run and how many rows it deleted.
    pub last_prune_at: Option<i64>,
    pub last_prune_rows: Option<i64>,
    /// The create budget and the backlog's drain (see `delivery::pacing`).
    pub pacing: crate::domain::pacing::PacingSnapshot,
}

/// Refused CRM items of one source for one reason.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct RefusedCount {
    pub source: String,
    pub reason: String,
    pub n: i64,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

fn iso(ms: Option<i64>) -> Option<String> {
    ms.and_then(crate::time::rfc3339)
}

fn age_secs(ms: Option<i64>, now: i64) -> Option<f64> {
    ms.map(|t| ((now - t).max(0) as f64) / 1000.0)
}

async fn status(state: web::Data<StatusState>) -> HttpResponse {
    let uptime_secs = state.started.elapsed().as_secs();
    let version = env!("CARGO_PKG_VERSION");
    if let Some(problem) = state.store.problem() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "version": version,
            "uptime_secs": uptime_secs,
            "database": {"ok": false, "problem": problem},
        }));
    }
    let snapshot = match state.store.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "Failed to read status");
            return HttpResponse::ServiceUnavailable().json(json!({
                "version": version,
                "uptime_secs": uptime_secs,
                "database": {"ok": false},
            }));
        }
    };
    let now = now_ms();
    HttpResponse::Ok().json(json!({
        "version": version,
        "uptime_secs": uptime_secs,
        "database": {"ok": true, "size_bytes": snapshot.database_bytes},
        "webhooks": state.webhooks,
        "outbox": {
            "counts": snapshot.counts,
            "oldest_waiting_at": iso(snapshot.oldest_waiting_at),
            "oldest_waiting_age_secs": age_secs(snapshot.oldest_waiting_at, now),
        },
        "delivery": {
            "paused": snapshot.paused_reason.is_some(),
            "paused_reason": snapshot.paused_reason,
            // Set after a 429 from Tallyfy: nothing is sent before this time.
            "rate_limited_until": iso(snapshot.rate_limited_until.filter(|until| *until > now)),
            "heartbeat_at": iso(snapshot.heartbeat_at),
            "heartbeat_age_secs": age_secs(snapshot.heartbeat_at, now),
            "last_delivered_at": iso(snapshot.last_delivered_at),
            "last_error": snapshot.last_error,
            "last_error_at": iso(snapshot.last_error_at),
            "pacing": crate::delivery::pacing::PacingView::of(&snapshot.pacing),
        },
        "refused": {
            "total": snapshot.refused.iter().map(|r| r.n).sum::<i64>(),
            "by_source": snapshot.refused,
        },
        "retention": {
            "last_prune_at": iso(snapshot.last_prune_at),
            "last_prune_rows": snapshot.last_prune_rows,
        },
    }))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// Ready means a webhook would be stored now: the file is the one opened, the writer's commits
/// have not been failing, and a write commits.
async fn ready(state: web::Data<StatusState>) -> HttpResponse {
    let checked = if state.writer.recently_failed() {
        Err(anyhow::anyhow!(
            "webhook commits failed in the last seconds (disk full, I/O error or lock)"
        ))
    } else {
        state.store.check_ready().await
    };
    match checked {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "Not ready");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database would not store a webhook now (see the log)".into(),
                None,
            )
        }
    }
}
