//! Read-only views for operators and orchestrators: `/status`, `/health/live`, `/health/ready`.
//! Never shows secrets; errors come from the worker already redacted.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::api_error::json_error;
use crate::outbox::{Store, WriterHandle};
use crate::time::now_ms;

pub mod view;
use view::{DatabaseStatus, Health, Status, StatusUnavailable};

pub struct StatusState {
    /// `/status` and readiness fail while it reports a problem (a deleted or replaced file).
    pub store: Arc<dyn Store>,
    /// Readiness asks whether its commits have been failing.
    pub writer: WriterHandle,
    pub started: Instant,
    /// The webhook paths this deployment accepts (the canonical one and configured CRMs).
    pub webhooks: Vec<String>,
    /// The Tallyfy credentials delivery uses (`None` without delivery).
    pub credentials: Option<Arc<crate::tallyfy::Credentials>>,
    /// The CRMs that can be reconciled, for the `reconcile` section.
    pub reconciler: Arc<crate::reconcile::Reconciler>,
}

/// Rows per state.
#[derive(Debug, Default, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, sqlx::FromRow, utoipa::ToSchema)]
pub struct RefusedCount {
    pub source: String,
    pub reason: String,
    pub n: i64,
}

/// `/status` lists the replicas whose heartbeat came in the last hour.
const REPLICAS_SEEN_MS: i64 = 3_600_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(status))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

/// The bridge's figures; never a secret.
#[utoipa::path(get, path = "/status", tag = "status",
    responses(
        (status = 200, description = "The figures could be read", body = Status),
        (status = 503, description = "The database could not be read", body = StatusUnavailable),
    ))]
pub async fn status(state: web::Data<StatusState>) -> HttpResponse {
    let uptime_secs = state.started.elapsed().as_secs();
    if let Some(problem) = state.store.problem() {
        return HttpResponse::ServiceUnavailable()
            .json(StatusUnavailable::new(uptime_secs, Some(problem)));
    }
    let now = now_ms();
    let read = async {
        let snapshot = state.store.snapshot().await?;
        let replicas = state.store.replicas(now - REPLICAS_SEEN_MS).await?;
        anyhow::Ok((snapshot, replicas, state.reconciler.status(now).await?))
    };
    match read.await {
        Ok((snapshot, replicas, reconcile)) => {
            let database = DatabaseStatus::new(state.store.as_ref(), &snapshot, replicas, now);
            HttpResponse::Ok().json(Status::new(
                uptime_secs,
                state.webhooks.clone(),
                database,
                snapshot,
                crate::tallyfy::TallyfyStatus::of(state.credentials.as_deref()),
                reconcile,
                now,
            ))
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "Failed to read status");
            HttpResponse::ServiceUnavailable().json(StatusUnavailable::new(uptime_secs, None))
        }
    }
}

/// The process serves HTTP.
#[utoipa::path(get, path = "/health/live", tag = "status",
    responses((status = 200, description = "`{\"status\":\"live\"}`", body = Health)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "live" })
}

/// Ready means a webhook would be stored now: the file is the one opened, the writer's commits
/// have not been failing, and a write commits.
#[utoipa::path(get, path = "/health/ready", tag = "status",
    responses(
        (status = 200, description = "`{\"status\":\"ready\"}`", body = Health),
        (status = 503, description = "Not ready (`not_ready`); the reason is logged", body = crate::api_error::ErrorBody),
    ))]
pub async fn ready(state: web::Data<StatusState>) -> HttpResponse {
    let checked = if state.writer.recently_failed() {
        Err(anyhow::anyhow!(
            "webhook commits failed in the last seconds (disk full, I/O error or lock)"
        ))
    } else {
        state.store.check_ready().await
    };
    match checked {
        Ok(()) => HttpResponse::Ok().json(Health { status: "ready" }),
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
