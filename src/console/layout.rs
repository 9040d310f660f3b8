//! The page every console view is drawn in (head, navigation, logout form) and the console's
//! own error pages; every value goes through maud, which escapes it.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use crate::ops::page::BadParam;

/// A whole page; with a session, the navigation and the logout form.
pub(super) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tallyfy-bridge console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                @if let Some(session) = session {
                    (nav(session))
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn nav(session: &Session) -> Markup {
    html! {
        nav id="nav" {
            a id="nav-overview" href="/console" { "Overview" }
            a id="nav-failed" href="/console/deliveries?state=failed" { "Failed" }
            a id="nav-retrying" href="/console/deliveries?state=retrying" { "Retrying" }
            a id="nav-all" href="/console/deliveries" { "All rows" }
            a id="nav-refused" href="/console/refused" { "Refused" }
            form id="search" method="get" action="/console/search" {
                label for="search-email" { "Email" }
                input id="search-email" name="email" type="search" required;
                button type="submit" { "Search" }
            }
            form id="logout" method="post" action="/console/logout" {
                input type="hidden" name="csrf" value=(session.csrf);
                button id="logout-submit" type="submit" { "Log out" }
            }
        }
    }
}

/// An HTML answer.
pub(super) fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// `303 See Other` to `location` (a console path).
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}

/// A page that says what went wrong in `<p id="error">`.
pub(super) fn error_page(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    message: &str,
) -> HttpResponse {
    html(
        status,
        page(
            title,
            session,
            html! {
                p id="error" { (message) }
                p { a href="/console" { "Back to the overview" } }
            },
        ),
    )
}

/// 400 naming the parameter at fault.
pub(super) fn bad_param(session: &Session, bad: BadParam) -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        Some(session),
        "Bad request",
        &format!("{}: {}", bad.field, bad.message),
    )
}

/// 403: the form's CSRF token is missing or not this session's (or the login's).
pub(super) fn forbidden(session: Option<&Session>) -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        session,
        "Forbidden",
        "This form has expired or did not come from this console; reload the page and try again.",
    )
}

/// 500, logged with its cause, opaque to the browser.
pub(super) fn internal(error: anyhow::Error) -> HttpResponse {
    tracing::error!(error = %format!("{error:#}"), "Failed to answer a console request");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Internal error",
        "The console could not answer; the bridge's log says why.",
    )
}

pub(super) fn not_found_page(session: Option<&Session>) -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, session, "Not found", "No such page.")
}

/// An unknown console path, or (405, as elsewhere) a known one with another method.
pub(super) async fn not_found(request: actix_web::HttpRequest) -> HttpResponse {
    crate::openapi::method_not_allowed(&request).unwrap_or_else(|| not_found_page(None))
}

/// A time column as RFC 3339 UTC.
pub(super) fn time(ms: i64) -> String {
    crate::time::rfc3339(ms).unwrap_or_else(|| ms.to_string())
}

/// A time column that may be empty.
pub(super) fn opt_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".into())
}

/// An age like `3 s`, `5 min`, `2 h 10 min`.
pub(super) fn age(ms: i64, now: i64) -> String {
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// A value's name as the admin API's JSON shows it (`fetch_failed`, not `FetchFailed`).
pub(super) fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
