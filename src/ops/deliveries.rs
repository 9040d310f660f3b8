//! Finding, retrying and cancelling deliveries: `GET /deliveries` with filters and keyset pages,
//! `POST /deliveries/{id}/retry|cancel` and their bulk forms by filter, each write audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::Notify;

use super::audit::{self, AuditNote};
use super::filter::{FILTER_FIELDS, known_pairs, parse_bulk, parse_filter};
use super::page::{Cursor, Page, PageRequest};
use super::{OpsState, bad_param, internal, not_found, refuse};
use crate::api_error::json_error;
use crate::outbox::{RowState, Store};

pub use super::filter::{BULK_DEFAULT, BULK_MAX, DeliveryFilter};

/// What an operator does to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// A failed or cancelled row becomes due now, with a fresh retry budget.
    Retry,
    /// A row nobody wants delivered ends as `cancelled` and is never claimed.
    Cancel,
}

impl RowAction {
    /// The states a row may be in for the action.
    pub fn from_states(self) -> &'static [RowState] {
        match self {
            Self::Retry => &[RowState::Failed, RowState::Cancelled],
            Self::Cancel => &[RowState::Queued, RowState::Retrying, RowState::Failed],
        }
    }

    /// The audit action of one row.
    pub fn single(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
        }
    }

    /// The audit action by filter.
    pub fn bulk(self) -> &'static str {
        match self {
            Self::Retry => "bulk_retry",
            Self::Cancel => "bulk_cancel",
        }
    }

    pub(crate) fn allowed(self) -> String {
        let names: Vec<&str> = self.from_states().iter().map(|s| s.as_str()).collect();
        names.join(" or ")
    }

    /// What a row that went through the action became: `retried` or `cancelled`.
    pub(crate) fn past(self) -> &'static str {
        match self {
            Self::Retry => "retried",
            Self::Cancel => "cancelled",
        }
    }
}

/// One row's change as the admin API and the console make it: stored with its audit record,
/// logged, and a retried row handed to the worker at once.
pub(crate) async fn change_row(
    store: &dyn Store,
    wake: &Notify,
    id: i64,
    action: RowAction,
    note: &AuditNote,
) -> anyhow::Result<Moved> {
    let moved = store.change_delivery(id, action, note).await?;
    if let Moved::Done(_) = moved {
        audit::log(note, action.single(), Some(id), 1);
        if action == RowAction::Retry {
            wake.notify_one();
        }
    }
    Ok(moved)
}

/// The same for up to `limit` rows matching `filter`: how many moved, and whether more match.
pub(crate) async fn change_rows(
    store: &dyn Store,
    wake: &Notify,
    filter: &DeliveryFilter,
    action: RowAction,
    limit: usize,
    note: &AuditNote,
) -> anyhow::Result<(u64, bool)> {
    let (moved, more) = store.change_deliveries(filter, action, limit, note).await?;
    audit::log(note, action.bulk(), None, moved);
    if action == RowAction::Retry && moved > 0 {
        wake.notify_one();
    }
    Ok((moved, more))
}

/// What became of a one-row change.
#[derive(Debug, Clone)]
pub enum Moved {
    Done(Box<super::DeliveryView>),
    NotFound,
    /// The row is in a state the action does not apply to.
    Refused(RowState),
}

/// `POST /deliveries/{id}/retry|cancel`: the row after the change.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Changed {
    pub delivery: Box<super::DeliveryView>,
}

/// `POST /deliveries/retry|cancel`: how many rows moved, and whether more still match.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BulkMoved {
    pub moved: u64,
    /// Rows still match: send the same request again.
    pub more: bool,
}

/// The body of `POST /deliveries/retry|cancel`, as documented; `ops::filter` reads it field by
/// field so each bad or unknown field is named.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // For the schema: `additionalProperties: false`.
#[allow(dead_code)] // Only its schema is used.
pub struct BulkChange<S> {
    /// The rows' state: one the action applies to.
    state: S,
    #[schema(min_length = 1)]
    source: Option<String>,
    email: Option<String>,
    #[schema(format = DateTime)]
    since: Option<String>,
    #[schema(format = DateTime)]
    until: Option<String>,
    /// 1 to 10000, default 1000.
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// The states a bulk retry takes rows from (`RowAction::Retry`; documentation only).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RetryFrom {
    Failed,
    Cancelled,
}

/// The states a bulk cancel takes rows from (`RowAction::Cancel`; documentation only).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CancelFrom {
    Queued,
    Retrying,
    Failed,
}

/// `GET /deliveries?state=&source=&email=&since=&until=&limit=&cursor=`
#[utoipa::path(get, path = "/deliveries", operation_id = "list_deliveries", tag = "admin", security(("admin_token" = [])),
    params(
        ("state" = Option<RowState>, Query, description = "The row's state"),
        ("source" = Option<String>, Query, min_length = 1, description = "`canonical`, `hubspot`, `pipedrive` or `salesforce`"),
        ("email" = Option<String>, Query, description = "Normalised as ingest stores it"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive, on `received_at`"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive, on `received_at`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1 to 500, default 50"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "The `next_cursor` of the page before"),
    ),
    responses(
        (status = 200, body = Page<super::DeliveryView>),
        (status = 400, description = "A bad or unknown parameter or a forged cursor (`bad_request`, `field` names it)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn list(request: HttpRequest, state: web::Data<OpsState>) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let known = [&FILTER_FIELDS[..], &["limit", "cursor"]].concat();
    let parsed = known_pairs(&request, &known)
        .and_then(parse_filter)
        .and_then(|(filter, rest)| {
            let get = |name| {
                rest.iter()
                    .find(|(f, _)| *f == name)
                    .map(|(_, v)| v.as_str())
            };
            Ok((filter, PageRequest::parse(get("limit"), get("cursor"))?))
        });
    let (filter, page) = match parsed {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(bad),
    };
    match state
        .store
        .list_deliveries(&filter, page.after, page.limit + 1)
        .await
    {
        Ok(rows) => HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |row| Cursor {
            at: row.received_at,
            id: row.id,
        })),
        Err(error) => internal(error),
    }
}

/// A failed or cancelled row becomes due now, with a fresh retry budget.
#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The outbox row id")),
    responses(
        (status = 200, description = "The row after the change", body = Changed),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No such delivery, or no admin token configured", body = crate::api_error::ErrorBody),
        (status = 409, description = "The row is in a state the action does not apply to (`conflict`, `field` is `state`)", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be written", body = crate::api_error::ErrorBody),
    ))]
pub async fn retry_one(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_one(request, id, state, RowAction::Retry).await
}

/// A queued, retrying or failed row ends as `cancelled`.
#[utoipa::path(post, path = "/deliveries/{id}/cancel", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The outbox row id")),
    responses(
        (status = 200, description = "The row after the change", body = Changed),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No such delivery, or no admin token configured", body = crate::api_error::ErrorBody),
        (status = 409, description = "The row is in a state the action does not apply to (`conflict`, `field` is `state`)", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be written", body = crate::api_error::ErrorBody),
    ))]
pub async fn cancel_one(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_one(request, id, state, RowAction::Cancel).await
}

async fn change_one(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OpsState>,
    action: RowAction,
) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let Ok(id) = id.parse::<i64>() else {
        return not_found("delivery");
    };
    let note = AuditNote::of(&request);
    match change_row(&*state.store, &state.wake, id, action, &note).await {
        Ok(Moved::Done(row)) => HttpResponse::Ok().json(Changed { delivery: row }),
        Ok(Moved::NotFound) => not_found("delivery"),
        Ok(Moved::Refused(current)) => {
            let hint = if current == RowState::InFlight {
                "; try again when its attempt ends"
            } else {
                ""
            };
            json_error(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "delivery {id} is {}: only a {} delivery can be {}{hint}",
                    current.as_str(),
                    action.allowed(),
                    action.past()
                ),
                Some("state"),
            )
        }
        Err(error) => internal(error),
    }
}

/// The same change for every row matching a filter, bounded by `limit`.
#[utoipa::path(post, path = "/deliveries/retry", tag = "admin", security(("admin_token" = [])),
    request_body(content = BulkChange<RetryFrom>, content_type = "application/json"),
    responses(
        (status = 200, body = BulkMoved),
        (status = 400, description = "A bad or unknown field (`bad_request`; `field` names it, `body` for an unknown field or a body that is not a JSON object)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn retry_bulk(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_bulk(request, body, state, RowAction::Retry).await
}

/// The same change for every row matching a filter, bounded by `limit`.
#[utoipa::path(post, path = "/deliveries/cancel", tag = "admin", security(("admin_token" = [])),
    request_body(content = BulkChange<CancelFrom>, content_type = "application/json"),
    responses(
        (status = 200, body = BulkMoved),
        (status = 400, description = "A bad or unknown field (`bad_request`; `field` names it, `body` for an unknown field or a body that is not a JSON object)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn cancel_bulk(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_bulk(request, body, state, RowAction::Cancel).await
}

async fn change_bulk(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<OpsState>,
    action: RowAction,
) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let (filter, limit) = match parse_bulk(&body, action) {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(bad),
    };
    let note = AuditNote::of(&request);
    match change_rows(&*state.store, &state.wake, &filter, action, limit, &note).await {
        Ok((moved, more)) => HttpResponse::Ok().json(BulkMoved { moved, more }),
        Err(error) => internal(error),
    }
}
