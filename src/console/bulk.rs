//! Retry or cancel by filter: a confirmation page that says how many rows the change would move
//! (the bulk UPDATE's own choice of rows, counted), then the change itself, audited as the
//! console's and waking the worker exactly as the admin API's bulk change does.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use super::deliveries::filter_pairs;
use super::layout::{bad_param, html, internal, page, see_other};
use super::{ConsoleState, PRINCIPAL, form, session};
use crate::ops::audit::AuditNote;
use crate::ops::deliveries::{BULK_MAX, DeliveryFilter, RowAction, change_rows};
use crate::ops::filter::{FILTER_FIELDS, Fields, check_bulk, known_pairs, parse_filter};
use crate::ops::page::BadParam;

fn action_of(text: Option<&str>) -> Result<RowAction, BadParam> {
    match text {
        Some("retry") => Ok(RowAction::Retry),
        Some("cancel") => Ok(RowAction::Cancel),
        _ => Err(BadParam::new("action", "action must be retry or cancel")),
    }
}

/// The action and the filter (its state one the action applies to), from named fields.
fn parse(fields: Fields) -> Result<(RowAction, DeliveryFilter), BadParam> {
    let (filter, rest) = parse_filter(fields)?;
    let action = action_of(
        rest.iter()
            .find(|(name, _)| *name == "action")
            .map(|(_, value)| value.as_str()),
    )?;
    check_bulk(&filter, action)?;
    Ok((action, filter))
}

/// The names a bulk form may carry besides the filter's.
const BULK_FIELDS: [&str; 2] = ["action", "csrf"];

/// A posted form's fields by their static names; an unknown one is refused, as a query's is.
fn known_fields(pairs: form::Pairs) -> Result<Fields, BadParam> {
    let known = [&FILTER_FIELDS[..], &BULK_FIELDS[..]].concat();
    pairs
        .into_iter()
        .filter(|(key, _)| key != "csrf")
        .map(|(key, value)| match known.iter().find(|k| **k == key) {
            Some(name) => Ok((*name, value)),
            None => Err(BadParam::new(
                "body",
                format!(
                    "unknown body field `{}`; known: {}",
                    key.chars().take(40).collect::<String>(),
                    known.join(", ")
                ),
            )),
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/console/bulk",
    tag = "console",
    params(
        ("action" = String, Query, description = "retry or cancel"),
        ("state" = String, Query, description = "A state the action applies to"),
        ("source" = Option<String>, Query, description = "The webhook source"),
        ("email" = Option<String>, Query, description = "An email"),
        ("since" = Option<String>, Query, description = "Received at or after (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Received before (RFC 3339)"),
    ),
    responses(
        (status = 200, description = "How many rows would change, and the form that changes them", body = String, content_type = "text/html"),
        (status = 400, description = "A bad or unknown parameter, named", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn confirm(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let known = [&FILTER_FIELDS[..], &["action"]].concat();
    let (action, filter) = match known_pairs(&request, &known).and_then(parse) {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(&session, bad),
    };
    let count = match state
        .store
        .count_deliveries(&filter, action, BULK_MAX)
        .await
    {
        Ok(count) => count,
        Err(error) => return internal(error),
    };
    let verb = action.single();
    let body = html! {
        p class="filter" {
            "Filter: "
            @for (name, value) in filter_pairs(&filter) { span class="term" { (name) " = " (value) } " " }
        }
        p id="confirm-count" {
            @if count as usize >= BULK_MAX {
                "At least " (count) " rows match; this will " (verb) " the first " (count)
                " (repeat for the rest)."
            } @else {
                "This will " (verb) " " (count) " row" @if count != 1 { "s" } "."
            }
        }
        form id="confirm" method="post" action="/console/bulk" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="action" value=(action.single());
            @for (name, value) in filter_pairs(&filter) {
                input type="hidden" name=(name) value=(value);
            }
            button id="confirm-submit" type="submit" { "Yes, " (verb) " " (count) " rows" }
        }
        p { a href=(form::link("/console/deliveries", &filter_pairs(&filter))) { "Back to the list" } }
    };
    html(
        StatusCode::OK,
        page(&format!("Confirm bulk {verb}"), Some(&session), body),
    )
}

#[utoipa::path(
    post,
    path = "/console/bulk",
    tag = "console",
    request_body(content = super::form::schema::BulkForm, description = "`csrf`, `action` and the filter, as the confirmation form carries them", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: on to /console/bulk/done, which says how many rows moved"),
        (status = 400, description = "A bad or unknown field, named", body = String, content_type = "text/html"),
        (status = 403, description = "The form's CSRF token is missing or wrong; nothing changed", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn apply(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    let (session, pairs) = match session::posted(&request, &state, &body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let (action, filter) = match known_fields(pairs).and_then(parse) {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(&session, bad),
    };
    let note = AuditNote::by(&request, PRINCIPAL);
    let (moved, more) =
        match change_rows(&*state.store, &state.wake, &filter, action, BULK_MAX, &note).await {
            Ok(result) => result,
            Err(error) => return internal(error),
        };
    see_other(&form::link(
        "/console/bulk/done",
        &[
            ("action", action.single().to_owned()),
            ("moved", moved.to_string()),
            ("more", more.to_string()),
        ],
    ))
}

#[utoipa::path(
    get,
    path = "/console/bulk/done",
    tag = "console",
    responses(
        (status = 200, description = "How many rows the bulk change moved", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn done(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let query = form::parse(request.query_string().as_bytes()).unwrap_or_default();
    let action = action_of(form::field(&query, "action")).unwrap_or(RowAction::Retry);
    let moved: u64 = form::field(&query, "moved")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let more = form::field(&query, "more") == Some("true");
    let body = html! {
        p id="flash" {
            @match action {
                RowAction::Retry => { "Retried " (moved) " rows: they are queued and the worker is woken." }
                RowAction::Cancel => { "Cancelled " (moved) " rows." }
            }
            @if more { " More rows match: confirm again for the next ones." }
        }
        p { a href="/console" { "Back to the overview" } }
    };
    html(
        StatusCode::OK,
        page("Bulk change done", Some(&session), body),
    )
}
