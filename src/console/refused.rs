//! `GET /console/refused`: the CRM items the bridge did not queue, with their reasons, newest
//! first a page at a time (the admin API's `GET /refused` parameters).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use super::layout::{bad_param, html, internal, page, time};
use super::{ConsoleState, form, session};
use crate::ops::page::{BadParam, Cursor, DEFAULT_LIMIT, Page};
use crate::ops::refused::{Params, RefusedFilter};

fn filter_pairs(filter: &RefusedFilter, limit: usize) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    for (name, value) in [("source", &filter.source), ("reason", &filter.reason)] {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    for (name, ms) in [("since", filter.since), ("until", filter.until)] {
        if let Some(text) = ms.and_then(crate::time::rfc3339) {
            pairs.push((name, text));
        }
    }
    if limit != DEFAULT_LIMIT {
        pairs.push(("limit", limit.to_string()));
    }
    pairs
}

fn next_href(filter: &RefusedFilter, limit: usize, cursor: &str) -> String {
    let mut pairs = filter_pairs(filter, limit);
    pairs.push(("cursor", cursor.to_owned()));
    form::link("/console/refused", &pairs)
}

#[utoipa::path(
    get,
    path = "/console/refused",
    operation_id = "console_refused",
    tag = "console",
    params(
        ("source" = Option<String>, Query, description = "The CRM source"),
        ("reason" = Option<String>, Query, description = "The reason code"),
        ("since" = Option<String>, Query, description = "Refused at or after (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Refused before (RFC 3339)"),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 500"),
        ("cursor" = Option<String>, Query, description = "The next page's cursor"),
    ),
    responses(
        (status = 200, description = "A page of refused items, newest first", body = String, content_type = "text/html"),
        (status = 400, description = "A bad or unknown parameter, named", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
    )
)]
pub(super) async fn list(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let parsed = web::Query::<Params>::from_query(request.query_string())
        // serde's message names the parameter: "unknown field `sorce`, expected …".
        .map_err(|error| BadParam::new("query", error.to_string()))
        .and_then(|params| params.into_inner().parse());
    let (filter, paging) = match parsed {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(&session, bad),
    };
    let items = match state
        .store
        .refused(&filter, paging.after, paging.limit + 1)
        .await
    {
        Ok(items) => items,
        Err(error) => return internal(error),
    };
    let items = Page::from_rows(items, paging.limit, |item| Cursor {
        at: item.refused_at,
        id: item.id,
    });
    let body = html! {
        // One <tr> per item and nothing else (the DOM contract): the columns are named in the
        // caption.
        table id="refused" {
            caption {
                "Refused at · source · reason · field at fault · CRM record · CRM event · "
                "notification · outbox row"
            }
            tbody {
                @for item in &items.items {
                    tr data-id=(item.id) {
                        td { (time(item.refused_at)) }
                        td { (item.source) }
                        td { (item.reason) }
                        td { (item.field) }
                        td { (item.record_id.as_deref().unwrap_or("")) }
                        td { (item.event_id.as_deref().unwrap_or("")) }
                        td { (item.notification_id.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(id) = item.outbox_id {
                                a href=(format!("/console/deliveries/{id}")) { (id) }
                            }
                        }
                    }
                }
            }
        }
        @if items.items.is_empty() { p { "No refused items match." } }
        @if let Some(cursor) = &items.next_cursor {
            p { a id="next-page" href=(next_href(&filter, paging.limit, cursor)) { "Next page →" } }
        }
    };
    html(
        StatusCode::OK,
        page("Refused CRM items", Some(&session), body),
    )
}
