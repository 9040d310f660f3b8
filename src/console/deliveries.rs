//! The delivery pages: a filtered, paged list (the admin API's filter and cursor), one row with
//! its attempt log, and its retry and cancel, audited as the console's and waking the worker
//! exactly as the admin API's do.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::layout::{bad_param, html, internal, not_found_page, opt_time, page, see_other, time};
use super::session::{self, Session};
use super::{ConsoleState, PRINCIPAL, form};
use crate::ops::DeliveryView;
use crate::ops::audit::{self, AuditNote};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::filter::{FILTER_FIELDS, known_pairs, parse_filter};
use crate::ops::page::{BadParam, Cursor, Page, PageRequest};

/// The filter as query parameters, to carry it into a link or a form.
pub(super) fn filter_pairs(filter: &DeliveryFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(state) = filter.state {
        pairs.push(("state", state.as_str().to_owned()));
    }
    if let Some(source) = &filter.source {
        pairs.push(("source", source.clone()));
    }
    if let Some(email) = &filter.email {
        pairs.push(("email", email.clone()));
    }
    for (name, ms) in [("since", filter.since), ("until", filter.until)] {
        if let Some(text) = ms.and_then(crate::time::rfc3339) {
            pairs.push((name, text));
        }
    }
    pairs
}

/// The filter and page of the request's query (the admin API's parameters).
fn parse(request: &HttpRequest) -> Result<(DeliveryFilter, PageRequest), BadParam> {
    let known = [&FILTER_FIELDS[..], &["limit", "cursor"]].concat();
    let (filter, rest) = known_pairs(request, &known).and_then(parse_filter)?;
    let get = |name| {
        rest.iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.as_str())
    };
    Ok((filter, PageRequest::parse(get("limit"), get("cursor"))?))
}

/// A table of rows, each linking to its page.
pub(super) fn rows_table(rows: &[DeliveryView]) -> Markup {
    html! {
        table id="deliveries" {
            tr {
                th { "Id" } th { "State" } th { "Source" } th { "Email or CRM record" }
                th { "Attempts" } th { "Received" } th { "Last error" }
            }
            @for row in rows {
                tr data-id=(row.id) data-state=(row.state.as_str()) {
                    td { a class="row-link" href=(format!("/console/deliveries/{}", row.id)) { (row.id) } }
                    td { (row.state.as_str()) }
                    td { (row.source) }
                    td {
                        @if let Some(email) = &row.email { (email) }
                        @else if let Some(record) = &row.crm_record { "record " (record) }
                    }
                    td { (row.attempts) }
                    td { (time(row.received_at)) }
                    td class="error" { (row.last_error.as_deref().unwrap_or("")) }
                }
            }
        }
        @if rows.is_empty() { p { "No rows match." } }
    }
}

/// A "… all matching" form leading to the confirmation page, when `action` applies to the
/// filter's state.
fn bulk_form(filter: &DeliveryFilter, action: RowAction) -> Markup {
    let applies = filter
        .state
        .is_some_and(|state| action.from_states().contains(&state));
    let (id, label) = match action {
        RowAction::Retry => ("bulk-retry", "Retry all matching…"),
        RowAction::Cancel => ("bulk-cancel", "Cancel all matching…"),
    };
    html! {
        @if applies {
            form id=(id) method="get" action="/console/bulk" {
                input type="hidden" name="action" value=(action.single());
                @for (name, value) in filter_pairs(filter) {
                    input type="hidden" name=(name) value=(value);
                }
                button id=(format!("{id}-submit")) type="submit" { (label) }
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/console/deliveries",
    tag = "console",
    params(
        ("state" = Option<String>, Query, description = "queued, in_flight, retrying, delivered, failed or cancelled"),
        ("source" = Option<String>, Query, description = "The webhook source"),
        ("email" = Option<String>, Query, description = "An email (normalised as ingest stores it)"),
        ("since" = Option<String>, Query, description = "Received at or after (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Received before (RFC 3339)"),
        ("limit" = Option<usize>, Query, description = "Rows per page, 1 to 500"),
        ("cursor" = Option<String>, Query, description = "The next page's cursor"),
    ),
    responses(
        (status = 200, description = "A page of rows, newest first", body = String, content_type = "text/html"),
        (status = 400, description = "A bad or unknown parameter, named", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn list(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let (filter, paging) = match parse(&request) {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(&session, bad),
    };
    let rows = match state
        .store
        .list_deliveries(&filter, paging.after, paging.limit + 1)
        .await
    {
        Ok(rows) => rows,
        Err(error) => return internal(error),
    };
    let rows = Page::from_rows(rows, paging.limit, |row| Cursor {
        at: row.received_at,
        id: row.id,
    });
    let title = match filter.state {
        Some(state) => format!("Deliveries: {}", state.as_str()),
        None => "Deliveries".to_owned(),
    };
    let body = html! {
        @let shown = filter_pairs(&filter);
        @if !shown.is_empty() {
            p class="filter" {
                "Filter: "
                @for (name, value) in &shown { span class="term" { (name) " = " (value) } " " }
            }
        }
        div class="actions" {
            (bulk_form(&filter, RowAction::Retry))
            (bulk_form(&filter, RowAction::Cancel))
        }
        (rows_table(&rows.items))
        @if let Some(cursor) = &rows.next_cursor {
            (next_link(&filter, paging.limit, cursor))
        }
    };
    html(StatusCode::OK, page(&title, Some(&session), body))
}

/// The link to the page after `cursor`, same filter and page size.
pub(super) fn next_link(filter: &DeliveryFilter, limit: usize, cursor: &str) -> Markup {
    let mut pairs = filter_pairs(filter);
    if limit != crate::ops::page::DEFAULT_LIMIT {
        pairs.push(("limit", limit.to_string()));
    }
    pairs.push(("cursor", cursor.to_owned()));
    html! {
        p { a id="next-page" href=(form::link("/console/deliveries", &pairs)) { "Next page →" } }
    }
}

/// What the row page says after an action (`?flash=`).
fn flash_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "retried" => "Retry requested: the row is queued and the worker is woken.",
        "cancelled" => "Cancelled: the row will not be delivered.",
        "not-retried" => "Not retried: only a failed or cancelled row can be retried.",
        "not-cancelled" => {
            "Not cancelled: only a queued, retrying or failed row can be cancelled (an in-flight one when its attempt ends)."
        }
        _ => return None,
    })
}

#[utoipa::path(
    get,
    path = "/console/deliveries/{id}",
    tag = "console",
    params(("id" = i64, Path, description = "The outbox row id")),
    responses(
        (status = 200, description = "The row with its attempt log and, when allowed, retry and cancel forms", body = String, content_type = "text/html"),
        (status = 404, description = "No such row", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn row(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page(Some(&session));
    };
    let (row, attempts) = match state.store.delivery(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found_page(Some(&session)),
        Err(error) => return internal(error),
    };
    let query = form::parse(request.query_string().as_bytes()).unwrap_or_default();
    let flash = form::field(&query, "flash").and_then(flash_text);
    let body = html! {
        @if let Some(flash) = flash { p id="flash" { (flash) } }
        dl class="row" {
            dt { "State" } dd id="state" { (row.state.as_str()) }
            dt { "Source" } dd { (row.source) }
            dt { "CRM event id" } dd { (row.event_id.as_deref().unwrap_or("—")) }
            dt { "Email" } dd id="email" { (row.email.as_deref().unwrap_or("—")) }
            dt { "CRM record" } dd { (row.crm_record.as_deref().unwrap_or("—")) }
            dt { "Attempts" } dd { (row.attempts) }
            dt { "Next attempt" } dd { (time(row.next_attempt_at)) }
            dt { "Lease until" } dd { (opt_time(row.lease_until)) }
            dt { "Tallyfy guest id" } dd id="guest-id" { (row.guest_id.as_deref().unwrap_or("—")) }
            dt { "Last error" } dd id="last-error" { (row.last_error.as_deref().unwrap_or("—")) }
            dt { "Received" } dd { (time(row.received_at)) }
            dt { "Delivered" } dd { (opt_time(row.delivered_at)) }
            dt { "Retried by an operator" } dd { (opt_time(row.retried_at)) }
        }
        div class="actions" {
            @for action in [RowAction::Retry, RowAction::Cancel] {
                @if action.from_states().contains(&row.state) {
                    (action_form(&session, id, action))
                }
            }
        }
        h2 { "Attempts" }
        table id="attempts" {
            tr {
                th { "#" } th { "Started" } th { "Duration" } th { "HTTP status" }
                th { "Outcome" } th { "Error" }
            }
            @for attempt in &attempts {
                tr {
                    td { (attempt.attempt) }
                    td { (time(attempt.started_at)) }
                    td { (attempt.duration_ms) " ms" }
                    td { (attempt.http_status.map(|s| s.to_string()).unwrap_or_default()) }
                    td { (format!("{:?}", attempt.outcome)) }
                    td class="error" { (attempt.error.as_deref().unwrap_or("")) }
                }
            }
        }
        @if attempts.is_empty() { p { "No attempt yet." } }
    };
    html(
        StatusCode::OK,
        page(&format!("Delivery {id}"), Some(&session), body),
    )
}

fn action_form(session: &Session, id: i64, action: RowAction) -> Markup {
    let name = action.single();
    html! {
        form id=(name) method="post" action=(format!("/console/deliveries/{id}/{name}")) {
            input type="hidden" name="csrf" value=(session.csrf);
            button id=(format!("{name}-submit")) type="submit" {
                @match action {
                    RowAction::Retry => "Retry now",
                    RowAction::Cancel => "Cancel delivery",
                }
            }
        }
    }
}

#[utoipa::path(
    post,
    path = "/console/deliveries/{id}/retry",
    tag = "console",
    params(("id" = i64, Path, description = "The outbox row id")),
    request_body(content = String, description = "The session's `csrf`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done or refused (by the row's state): back to the row page, which says which"),
        (status = 403, description = "The form's CSRF token is missing or wrong; nothing changed", body = String, content_type = "text/html"),
        (status = 404, description = "No such row", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn retry(
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    change(request, id, body, state, RowAction::Retry).await
}

#[utoipa::path(
    post,
    path = "/console/deliveries/{id}/cancel",
    tag = "console",
    params(("id" = i64, Path, description = "The outbox row id")),
    request_body(content = String, description = "The session's `csrf`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done or refused (by the row's state): back to the row page, which says which"),
        (status = 403, description = "The form's CSRF token is missing or wrong; nothing changed", body = String, content_type = "text/html"),
        (status = 404, description = "No such row", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn cancel(
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    change(request, id, body, state, RowAction::Cancel).await
}

async fn change(
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
    action: RowAction,
) -> HttpResponse {
    let (session, _) = match session::posted(&request, &state, &body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page(Some(&session));
    };
    let note = AuditNote::by(&request, PRINCIPAL);
    let flash = match state.store.change_delivery(id, action, &note).await {
        Ok(Moved::Done(_)) => {
            audit::log(&note, action.single(), Some(id), 1);
            if action == RowAction::Retry {
                state.wake.notify_one();
            }
            match action {
                RowAction::Retry => "retried",
                RowAction::Cancel => "cancelled",
            }
        }
        Ok(Moved::NotFound) => return not_found_page(Some(&session)),
        Ok(Moved::Refused(_)) => match action {
            RowAction::Retry => "not-retried",
            RowAction::Cancel => "not-cancelled",
        },
        Err(error) => return internal(error),
    };
    see_other(&format!("/console/deliveries/{id}?flash={flash}"))
}
