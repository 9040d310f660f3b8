//! `GET /console/search?email=`: what the bridge knows of one email: its guest-ledger entry (the
//! Tallyfy guest id) and its rows, each linking to its attempt log.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use super::deliveries::{next_link, rows_table};
use super::layout::{bad_param, html, internal, page, time, wire_name};
use super::{ConsoleState, form, session};
use crate::domain::lookup_key;
use crate::ops::deliveries::DeliveryFilter;
use crate::ops::page::{BadParam, Cursor, DEFAULT_LIMIT, Page};

#[utoipa::path(
    get,
    path = "/console/search",
    tag = "console",
    params(("email" = String, Query, description = "The email to look up (normalised as ingest stores it)")),
    responses(
        (status = 200, description = "The ledger entry and the rows of the email", body = String, content_type = "text/html"),
        (status = 400, description = "No email given", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn search(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let query = form::parse(request.query_string().as_bytes()).unwrap_or_default();
    let email = lookup_key(form::field(&query, "email").unwrap_or(""));
    if email.is_empty() {
        return bad_param(
            &session,
            BadParam::new("email", "give an email to search for"),
        );
    }
    let entry = match &state.org_id {
        Some(org_id) => match state.store.ledger_entry(org_id, &email).await {
            Ok(entry) => entry,
            Err(error) => return internal(error),
        },
        None => None,
    };
    let filter = DeliveryFilter {
        email: Some(email.clone()),
        ..DeliveryFilter::default()
    };
    let rows = match state
        .store
        .list_deliveries(&filter, None, DEFAULT_LIMIT + 1)
        .await
    {
        Ok(rows) => rows,
        Err(error) => return internal(error),
    };
    let rows = Page::from_rows(rows, DEFAULT_LIMIT, |row| Cursor {
        at: row.received_at,
        id: row.id,
    });
    let body = html! {
        p { "Email: " strong id="searched" { (email) } }
        section id="ledger" {
            h2 { "Tallyfy guest" }
            @match (&entry, &state.org_id) {
                (Some(entry), _) => dl {
                    dt { "Guest id" } dd id="guest-id" { (entry.guest_id) }
                    dt { "Organisation" } dd { (entry.org_id) }
                    dt { "Learned by" } dd { (wire_name(&entry.learned_by)) }
                    dt { "Recorded" } dd { (time(entry.created_at)) }
                    dt { "By row" } dd {
                        a href=(format!("/console/deliveries/{}", entry.outbox_id)) { (entry.outbox_id) }
                    }
                },
                (None, Some(_)) => p { "No guest is recorded for this email: none has been created by the bridge yet." },
                (None, None) => p { "Delivery is not configured, so there is no guest ledger to look in." },
            }
        }
        h2 { "Rows" }
        (rows_table(&rows.items))
        @if let Some(cursor) = &rows.next_cursor {
            (next_link(&filter, DEFAULT_LIMIT, cursor))
        }
    };
    html(StatusCode::OK, page("Search", Some(&session), body))
}
