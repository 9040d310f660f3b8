//! Operator endpoints behind the admin token: one delivery with its attempt log, the ledger
//! entry (Tallyfy guest id) of an email, and (in [`deliveries`], [`audit`]) finding, retrying
//! and cancelling deliveries. Answer 404 when no admin token is configured.

use std::sync::Arc;

use tokio::sync::Notify;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};

use crate::api_error::json_error;
use crate::domain::lookup_key;
use crate::domain::outcome::{AttemptClass, LearnedBy};
use crate::http_auth::{bearer, secrets_match};
use crate::outbox::{RowState, Store};
use crate::reconcile::Reconciler;

pub mod audit;
pub mod deliveries;
pub(crate) mod filter;
pub mod page;
pub mod reconcile;
pub mod refused;

use page::BadParam;

pub struct OpsState {
    pub store: Arc<dyn Store>,
    pub admin_token: Option<SecretString>,
    /// The ledger is per organisation; None when delivery is not configured.
    pub org_id: Option<String>,
    /// Wakes the delivery worker (as an ingest commit does), so a retried row goes now.
    pub wake: Arc<Notify>,
    /// Runs `POST /admin/reconcile/{source}`.
    pub reconciler: Arc<Reconciler>,
}

/// A row id segment is digits, so `GET /deliveries/retry` is the bulk route's 405, not a
/// look-up of a delivery called `retry`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries", web::get().to(deliveries::list))
        .route("/deliveries/retry", web::post().to(deliveries::retry_bulk))
        .route(
            "/deliveries/cancel",
            web::post().to(deliveries::cancel_bulk),
        )
        .route("/deliveries/{id:[0-9]+}", web::get().to(delivery))
        .route(
            "/deliveries/{id:[0-9]+}/retry",
            web::post().to(deliveries::retry_one),
        )
        .route(
            "/deliveries/{id:[0-9]+}/cancel",
            web::post().to(deliveries::cancel_one),
        )
        .route("/audit", web::get().to(audit::list))
        .route("/reconcile/{source}", web::post().to(reconcile::run))
        .route("/refused", web::get().to(refused::list))
        .route("/guests/{email}", web::get().to(guest));
}

fn not_found(what: &str) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such {what}"),
        None,
    )
}

/// `None` when the request may proceed, otherwise the refusal to send.
fn refuse(request: &HttpRequest, state: &OpsState) -> Option<HttpResponse> {
    let Some(expected) = &state.admin_token else {
        return Some(not_found("endpoint"));
    };
    let presented = bearer(request.headers()).unwrap_or("");
    if secrets_match(presented.as_bytes(), expected.expose_secret().as_bytes()) {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication failed".into(),
            None,
        ))
    }
}

/// The 400 of every admin endpoint: code `bad_request`, `field` naming the parameter.
fn bad_request(message: String, field: Option<&str>) -> HttpResponse {
    json_error(StatusCode::BAD_REQUEST, "bad_request", message, field)
}

fn bad_param(bad: BadParam) -> HttpResponse {
    bad_request(bad.message, Some(bad.field))
}

/// A parameter or body field the endpoint does not know: refused, so a typo in a filter never
/// widens what a list shows or a bulk change moves.
fn unknown(field: &'static str, key: &str, known: &[&str]) -> BadParam {
    let key: String = key.chars().take(40).collect();
    BadParam::new(
        field,
        format!("unknown {field} field `{key}`; known: {}", known.join(", ")),
    )
}

/// The query string as (name, value) pairs, percent-decoded.
fn query_pairs(request: &HttpRequest) -> Result<Vec<(String, String)>, BadParam> {
    web::Query::<Vec<(String, String)>>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| BadParam::new("query", "the query string is not form-encoded"))
}

fn internal(error: anyhow::Error) -> HttpResponse {
    tracing::error!(error = %format!("{error:#}"), "Failed to answer an ops request");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
        None,
    )
}

/// One outbox row and its attempt log.
#[utoipa::path(get, path = "/deliveries/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The outbox row id")),
    responses(
        (status = 200, body = DeliveryDetail),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No such delivery, or no admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn delivery(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OpsState>,
) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let Ok(id) = id.parse::<i64>() else {
        return not_found("delivery");
    };
    match state.store.delivery(id).await {
        Ok(Some((delivery, attempts))) => {
            HttpResponse::Ok().json(DeliveryDetail { delivery, attempts })
        }
        Ok(None) => not_found("delivery"),
        Err(error) => internal(error),
    }
}

/// The guest ledger entry of an email in the configured organisation.
#[utoipa::path(get, path = "/guests/{email}", tag = "admin", security(("admin_token" = [])),
    params(("email" = String, Path, description = "The email, normalised as ingest stores it")),
    responses(
        (status = 200, body = LedgerEntry),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No such guest, or no admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn guest(
    request: HttpRequest,
    email: web::Path<String>,
    state: web::Data<OpsState>,
) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let Some(org_id) = &state.org_id else {
        return not_found("guest");
    };
    match state.store.ledger_entry(org_id, &lookup_key(&email)).await {
        Ok(Some(entry)) => HttpResponse::Ok().json(entry),
        Ok(None) => not_found("guest"),
        Err(error) => internal(error),
    }
}

/// One outbox row as operators see it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub source: String,
    pub event_id: Option<String>,
    /// `None` until the CRM record the event names (`crm_record`) is read.
    pub email: Option<String>,
    pub crm_record: Option<String>,
    pub state: RowState,
    pub attempts: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
    #[serde(serialize_with = "crate::time::serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_until: Option<i64>,
    pub guest_id: Option<String>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: i64,
    #[serde(serialize_with = "crate::time::serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<i64>,
    /// When an operator last retried the row.
    #[serde(serialize_with = "crate::time::serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retried_at: Option<i64>,
}

/// `GET /deliveries/{id}`: the row and its attempt log.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
}

/// One line of a row's attempt log.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i64>,
    pub outcome: AttemptClass,
    pub error: Option<String>,
}

/// What the ledger knows of one email.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub org_id: String,
    pub email: String,
    pub guest_id: String,
    pub outbox_id: i64,
    pub learned_by: LearnedBy,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}
