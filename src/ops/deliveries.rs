//! Finding, retrying and cancelling deliveries: `GET /deliveries` with filters and keyset pages,
//! `POST /deliveries/{id}/retry|cancel` and their bulk forms by filter, each write audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::{self, AuditNote};
use super::page::{BadParam, Cursor, Page, PageRequest, parse_time};
use super::{OpsState, bad_param, internal, not_found, query_pairs, refuse, unknown};
use crate::api_error::json_error;
use crate::domain::lookup_key;
use crate::outbox::RowState;

/// Rows a bulk change moves when the caller does not say.
pub const BULK_DEFAULT: usize = 1000;
/// The most rows one bulk change may move.
pub const BULK_MAX: usize = 10_000;

/// Which rows: every field given must match. Times are ms on `received_at` (since inclusive,
/// until exclusive); the email is a lookup key (normalised as ingest stores it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RowState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time::serialize_opt_ms"
    )]
    pub since: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time::serialize_opt_ms"
    )]
    pub until: Option<i64>,
}

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

    fn allowed(self) -> String {
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

const FILTER_FIELDS: [&str; 5] = ["state", "source", "email", "since", "until"];

/// Parameters by their static field name, as given.
type Fields = Vec<(&'static str, String)>;

/// Reads the filter fields of `pairs` into a filter, and hands back the rest.
fn parse_filter(pairs: Fields) -> Result<(DeliveryFilter, Fields), BadParam> {
    let mut filter = DeliveryFilter::default();
    let mut rest = Vec::new();
    for (field, value) in pairs {
        match field {
            "state" => {
                let names: Vec<&str> = RowState::ALL.iter().map(|s| s.as_str()).collect();
                let state = value.parse().map_err(|()| {
                    BadParam::new(
                        "state",
                        format!("state must be one of {}", names.join(", ")),
                    )
                })?;
                filter.state = Some(state);
            }
            "source" if value.is_empty() => {
                return Err(BadParam::new("source", "source must not be empty"));
            }
            "source" => filter.source = Some(value),
            "email" => filter.email = Some(lookup_key(&value)),
            "since" => filter.since = Some(parse_time("since", &value)?),
            "until" => filter.until = Some(parse_time("until", &value)?),
            _ => rest.push((field, value)),
        }
    }
    Ok((filter, rest))
}

/// The known query parameters of `request`, each named by its static field name.
fn known_pairs(request: &HttpRequest, known: &[&'static str]) -> Result<Fields, BadParam> {
    query_pairs(request)?
        .into_iter()
        .map(|(key, value)| match known.iter().find(|k| **k == key) {
            Some(field) => Ok((*field, value)),
            None => Err(unknown("query", &key, known)),
        })
        .collect()
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

/// The bulk body `{"state", "source"?, "email"?, "since"?, "until"?, "limit"?}`, checked.
fn parse_bulk(body: &[u8], action: RowAction) -> Result<(DeliveryFilter, usize), BadParam> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| BadParam::new("body", "the body must be a JSON object"))?;
    let known = [&FILTER_FIELDS[..], &["limit"]].concat();
    let mut pairs = Vec::new();
    for (key, value) in object {
        let Some(field) = known.iter().find(|k| **k == key).copied() else {
            return Err(unknown("body", &key, &known));
        };
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            Value::Number(n) if field == "limit" => n.to_string(),
            _ if field == "limit" => return Err(BadParam::new("limit", "limit must be a number")),
            _ => return Err(BadParam::new(field, format!("{field} must be a string"))),
        };
        pairs.push((field, text));
    }
    let (filter, rest) = parse_filter(pairs)?;
    let Some(from) = filter.state else {
        return Err(BadParam::new(
            "state",
            format!("state is required: {}", action.allowed()),
        ));
    };
    if !action.from_states().contains(&from) {
        return Err(BadParam::new(
            "state",
            format!("state must be {}", action.allowed()),
        ));
    }
    let limit = match rest.first() {
        None => BULK_DEFAULT,
        Some((_, text)) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=BULK_MAX).contains(n))
            .ok_or_else(|| BadParam::new("limit", format!("limit must be 1 to {BULK_MAX}")))?,
    };
    Ok((filter, limit))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_body_needs_a_state_the_action_applies_to() {
        let field = |body: &str, action| parse_bulk(body.as_bytes(), action).map_err(|e| e.field);
        assert_eq!(field("{}", RowAction::Retry).err(), Some("state"));
        assert_eq!(
            field(r#"{"state":"queued"}"#, RowAction::Retry).err(),
            Some("state")
        );
        assert_eq!(
            field(r#"{"state":"delivered"}"#, RowAction::Cancel).err(),
            Some("state")
        );
        assert_eq!(
            field(r#"{"state":"failed","limit":0}"#, RowAction::Retry).err(),
            Some("limit")
        );
        assert_eq!(
            field(r#"{"state":"failed","limit":10001}"#, RowAction::Retry).err(),
            Some("limit")
        );
        assert_eq!(
            field(r#"{"state":"failed","sorce":"x"}"#, RowAction::Retry).err(),
            Some("body")
        );
        assert_eq!(
            field(r#"{"state":"failed","since":3}"#, RowAction::Retry).err(),
            Some("since")
        );
        assert_eq!(field("[]", RowAction::Retry).err(), Some("body"));
        let (filter, limit) = parse_bulk(
            br#"{"state":"failed","email":" Ada@Example.COM ","since":"1970-01-01T00:00:01Z"}"#,
            RowAction::Retry,
        )
        .expect("valid");
        assert_eq!(limit, BULK_DEFAULT);
        assert_eq!(filter.email.as_deref(), Some("ada@example.com"));
        assert_eq!(filter.since, Some(1000));
        assert_eq!(filter.state, Some(RowState::Failed));
    }
}
