//! Read-only views for operators and orchestrators: `/status`, `/health/live`, `/health/ready`.
//! Never shows secrets; errors come from the worker already redacted.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;
use sqlx::SqlitePool;

use crate::api_error::json_error;
use crate::outbox::{self, DatabaseFile, WriterHandle};
use crate::time::now_ms;

pub struct StatusState {
    pub pool: SqlitePool,
    /// The database file as opened: `/status` and readiness fail once it is deleted or replaced.
    pub file: Arc<DatabaseFile>,
    /// Readiness asks whether its commits have been failing.
    pub writer: WriterHandle,
    pub started: Instant,
    /// The webhook paths this deployment accepts (the canonical one and configured CRMs).
    pub webhooks: Vec<String>,
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
    if let Err(lost) = state.file.check() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "version": version,
            "uptime_secs": uptime_secs,
            "database": {"ok": false, "problem": lost.to_string()},
        }));
    }
    let snapshot = match outbox::snapshot(&state.pool).await {
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
        "database": {"ok": true},
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
        },
    }))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// Ready means a webhook would be stored now: the file is the one opened, the writer's commits
/// have not been failing, and a write commits.
async fn ready(state: web::Data<StatusState>) -> HttpResponse {
    let checked = match state.file.check() {
        Err(lost) => Err(anyhow::Error::new(lost)),
        Ok(()) if state.writer.recently_failed() => Err(anyhow::anyhow!(
            "webhook commits failed in the last seconds (disk full, I/O error or lock)"
        )),
        Ok(()) => outbox::check_ready(&state.pool).await,
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
