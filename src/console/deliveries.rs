//! The delivery list: rows by the admin API's filter and cursor, newest first, with the way into
//! a bulk change of everything matching (the row page is in [`super::row`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::layout::{bad_param, html, internal, page, time};
use super::{ConsoleState, form, session};
use crate::ops::DeliveryView;
use crate::ops::deliveries::{DeliveryFilter, RowAction};
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
    operation_id = "console_deliveries",
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
