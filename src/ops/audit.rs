//! The admin audit trail: who-and-when of every admin write (written by the store in the same
//! transaction as the change), its INFO log line, and `GET /audit` to read it without SQLite.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::filter::known_pairs;
use super::page::{Cursor, Page, PageRequest};
use super::{OpsState, bad_param, internal, refuse};

/// What the store records with an admin write besides the change itself.
#[derive(Debug, Clone)]
pub struct AuditNote {
    /// ms since the epoch; also the time the change is stamped with.
    pub at: i64,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// Who acted: [`Self::ADMIN_API`] or the console's `console`.
    pub principal: &'static str,
}

impl AuditNote {
    /// The bearer-token admin API.
    pub const ADMIN_API: &'static str = "admin_api";

    /// A change by the admin API.
    pub fn of(request: &HttpRequest) -> Self {
        Self::by(request, Self::ADMIN_API)
    }

    /// A change made through `principal` (the console says `console`).
    pub fn by(request: &HttpRequest, principal: &'static str) -> Self {
        Self {
            principal,
            at: crate::time::now_ms(),
            request_id: request
                .extensions()
                .get::<RequestId>()
                .map(ToString::to_string),
        }
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditView {
    pub id: i64,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// retry | cancel | bulk_retry | bulk_cancel
    pub action: String,
    /// The row id of a one-row action.
    pub target: Option<String>,
    /// The filter and limit of a bulk action, as the JSON it was stored as.
    #[serde(serialize_with = "raw_json")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<String>,
    pub affected: i64,
    pub request_id: Option<String>,
    /// admin_api | console
    pub principal: String,
}

/// Stored JSON shown as JSON, not as a string of it.
fn raw_json<S: serde::Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    text.as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .serialize(serializer)
}

/// Logs an admin write at INFO once it is committed; never an email.
pub fn log(note: &AuditNote, action: &str, target: Option<i64>, affected: u64) {
    tracing::info!(
        action,
        outbox_id = target,
        affected,
        principal = note.principal,
        request_id = note.request_id.as_deref().unwrap_or(""),
        "Admin action"
    );
}

/// `GET /audit?limit=&cursor=`
#[utoipa::path(get, path = "/audit", operation_id = "list_audit", tag = "admin", security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500, default 50"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "The `next_cursor` of the page before"),
    ),
    responses(
        (status = 200, body = super::page::Page<AuditView>),
        (status = 400, description = "A bad or unknown parameter (`bad_request`, `field` names it)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn list(request: HttpRequest, state: web::Data<OpsState>) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let parsed = known_pairs(&request, &["limit", "cursor"]).and_then(|pairs| {
        let get = |name| {
            pairs
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, v)| v.as_str())
        };
        PageRequest::parse(get("limit"), get("cursor"))
    });
    let page = match parsed {
        Ok(page) => page,
        Err(bad) => return bad_param(bad),
    };
    match state.store.audit_log(page.after, page.limit + 1).await {
        Ok(rows) => HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |row| Cursor {
            at: row.at,
            id: row.id,
        })),
        Err(error) => internal(error),
    }
}
