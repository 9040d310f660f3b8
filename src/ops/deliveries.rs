//! Finding, retrying and cancelling deliveries: `GET /deliveries` with filters and keyset pages,
//! `POST /deliveries/{id}/retry|cancel` and their bulk forms by filter, each write audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::audit::{self, AuditNote};
use super::filter::{FILTER_FIELDS, known_pairs, parse_bulk, parse_filter};
use super::page::{Cursor, Page, PageRequest};
use super::{OpsState, bad_param, internal, not_found, refuse};
use crate::api_error::json_error;
use crate::outbox::RowState;

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
}

/// What became of a one-row change.
#[derive(Debug, Clone)]
pub enum Moved {
    Done(Box<super::DeliveryView>),
    NotFound,
    /// The row is in a state the action does not apply to.
    Refused(RowState),
}

/// `GET /deliveries?state=&source=&email=&since=&until=&limit=&cursor=`
pub(super) async fn list(request: HttpRequest, state: web::Data<OpsState>) -> HttpResponse {
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

pub(super) async fn retry_one(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_one(request, id, state, RowAction::Retry).await
}

pub(super) async fn cancel_one(
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
    match state.store.change_delivery(id, action, &note).await {
        Ok(Moved::Done(row)) => {
            audit::log(&note, action.single(), Some(id), 1);
            if action == RowAction::Retry {
                state.wake.notify_one();
            }
            HttpResponse::Ok().json(json!({ "delivery": row }))
        }
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
                    match action {
                        RowAction::Retry => "retried",
                        RowAction::Cancel => "cancelled",
                    }
                ),
                Some("state"),
            )
        }
        Err(error) => internal(error),
    }
}

pub(super) async fn retry_bulk(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<OpsState>,
) -> HttpResponse {
    change_bulk(request, body, state, RowAction::Retry).await
}

pub(super) async fn cancel_bulk(
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
    match state
        .store
        .change_deliveries(&filter, action, limit, &note)
        .await
    {
        Ok((moved, more)) => {
            audit::log(&note, action.bulk(), None, moved);
            if action == RowAction::Retry && moved > 0 {
                state.wake.notify_one();
            }
            HttpResponse::Ok().json(json!({ "moved": moved, "more": more }))
        }
        Err(error) => internal(error),
    }
}
