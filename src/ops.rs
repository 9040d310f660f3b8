//! Operator look-ups behind the admin token: one delivery with its attempt log, and the ledger
//! entry (Tallyfy guest id) of an email. Answer 404 when no admin token is configured.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::SqlitePool;

use crate::api_error::json_error;
use crate::domain::lookup_key;
use crate::http_auth::{bearer, secrets_match};
use crate::outbox::delivery as store;

pub struct OpsState {
    pub pool: SqlitePool,
    pub admin_token: Option<SecretString>,
    /// The ledger is per organisation; None when delivery is not configured.
    pub org_id: Option<String>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries/{id}", web::get().to(delivery))
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

fn internal(error: anyhow::Error) -> HttpResponse {
    tracing::error!(error = %format!("{error:#}"), "Failed to answer an ops request");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
        None,
    )
}

async fn delivery(
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
    match store::delivery(&state.pool, id).await {
        Ok(Some((row, attempts))) => HttpResponse::Ok().json(json!({
            "delivery": row,
            "attempts": attempts,
        })),
        Ok(None) => not_found("delivery"),
        Err(error) => internal(error),
    }
}

async fn guest(
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
    match store::ledger_entry(&state.pool, org_id, &lookup_key(&email)).await {
        Ok(Some(entry)) => HttpResponse::Ok().json(entry),
        Ok(None) => not_found("guest"),
        Err(error) => internal(error),
    }
}
