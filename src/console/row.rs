//! One delivery's page: the row with its attempt log, and its retry and cancel, audited as the
//! console's and waking the worker exactly as the admin API's do.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::layout::{html, internal, not_found_page, opt_time, page, see_other, time, wire_name};
use super::session::{self, Session};
use super::{ConsoleState, PRINCIPAL, form};
use crate::ops::audit::AuditNote;
use crate::ops::deliveries::{Moved, RowAction, change_row};

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
                    td { (wire_name(&attempt.outcome)) }
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
    request_body(content = super::form::schema::CsrfForm, description = "The session's `csrf`", content_type = "application/x-www-form-urlencoded"),
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
    request_body(content = super::form::schema::CsrfForm, description = "The session's `csrf`", content_type = "application/x-www-form-urlencoded"),
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
    let flash = match change_row(&*state.store, &state.wake, id, action, &note).await {
        Ok(Moved::Done(_)) => action.past(),
        Ok(Moved::NotFound) => return not_found_page(Some(&session)),
        Ok(Moved::Refused(_)) => match action {
            RowAction::Retry => "not-retried",
            RowAction::Cancel => "not-cancelled",
        },
        Err(error) => return internal(error),
    };
    see_other(&format!("/console/deliveries/{id}?flash={flash}"))
}
