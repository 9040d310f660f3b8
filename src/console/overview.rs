//! `GET /console`: rows per state, the oldest waiting, whether delivery is paused or held by
//! Tallyfy's rate limit, the last error, the worker's heartbeat, refused items, the chart of the
//! last 48 hours, and each CRM's reconcile. Figures from
//! [`Store::snapshot`](crate::outbox::Store::snapshot) and `/status`'s reconcile section.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use super::layout::{age, html, internal, opt_time, page, time};
use super::{ConsoleState, chart, session};
use crate::outbox::RowState;
use crate::reconcile::status::ReconcileStatus;
use crate::time::now_ms;

/// The chart's span.
const CHART_HOURS: i64 = 48;

#[utoipa::path(
    get,
    path = "/console",
    tag = "console",
    responses(
        (status = 200, description = "The overview", body = String, content_type = "text/html"),
        (status = 303, description = "No valid session: on to /console/login"),
        (status = 404, description = "No admin token is configured"),
    )
)]
pub(super) async fn overview(request: HttpRequest, state: web::Data<ConsoleState>) -> HttpResponse {
    let session = match session::current(&request, &state).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let now = now_ms();
    let snapshot = match state.store.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(error) => return internal(error),
    };
    // The current hour and the 47 before it.
    let since = now - now.rem_euclid(3_600_000) - (CHART_HOURS - 1) * 3_600_000;
    let hours = match state.store.hourly_activity(since, now + 1).await {
        Ok(hours) => hours,
        Err(error) => return internal(error),
    };
    let reconciles = match state.reconciler.status(now).await {
        Ok(reconciles) => reconciles,
        Err(error) => return internal(error),
    };
    let counts = &snapshot.counts;
    let by_state = [
        (RowState::Queued, counts.queued),
        (RowState::InFlight, counts.in_flight),
        (RowState::Retrying, counts.retrying),
        (RowState::Delivered, counts.delivered),
        (RowState::Failed, counts.failed),
        (RowState::Cancelled, counts.cancelled),
    ];
    let rate_limited = snapshot.rate_limited_until.filter(|until| *until > now);
    let body = html! {
        section id="overview" {
            h2 { "Rows per state" }
            table class="counts" {
                tr {
                    @for (state, _) in by_state { th { (state.as_str()) } }
                }
                tr {
                    @for (state, n) in by_state {
                        td {
                            a href=(format!("/console/deliveries?state={}", state.as_str())) {
                                span data-count=(state.as_str()) { (n) }
                            }
                        }
                    }
                }
            }
            h2 { "Delivery" }
            dl {
                dt { "Oldest waiting" }
                dd id="oldest-waiting" {
                    @match snapshot.oldest_waiting_at {
                        Some(at) => { (time(at)) " (" (age(at, now)) " ago)" }
                        None => "nothing waiting",
                    }
                }
                dt { "Paused" }
                dd id="paused" {
                    @match &snapshot.paused_reason {
                        Some(reason) => { span class="bad" { "paused: " } (reason) }
                        None => "no",
                    }
                }
                dt { "Rate limited" }
                dd id="rate-limited" {
                    @match rate_limited {
                        Some(until) => { span class="bad" { "until " } (time(until)) }
                        None => "no",
                    }
                }
                dt { "Worker heartbeat" }
                dd id="heartbeat" {
                    @match snapshot.heartbeat_at {
                        Some(at) => { (age(at, now)) " ago (" (time(at)) ")" }
                        None => "never",
                    }
                }
                dt { "Last delivered" }
                dd { (opt_time(snapshot.last_delivered_at)) }
                dt { "Last error" }
                dd id="last-error" {
                    @match &snapshot.last_error {
                        Some(error) => { (error) " (" (opt_time(snapshot.last_error_at)) ")" }
                        None => "none",
                    }
                }
            }
            h2 { "Accepted and delivered, last 48 hours" }
            (chart::chart(&hours))
            @if !reconciles.is_empty() {
                h2 { "CRM reconcile" }
                (reconcile_table(&reconciles))
            }
            h2 { "Refused CRM items" }
            @if snapshot.refused.is_empty() {
                p { "None kept." }
            } @else {
                table id="refused-counts" {
                    tr { th { "Source" } th { "Reason" } th { "Items" } }
                    @for refused in &snapshot.refused {
                        tr {
                            td { (refused.source) }
                            td { (refused.reason) }
                            td {
                                a href=(super::form::link("/console/refused", &[
                                    ("source", refused.source.clone()),
                                    ("reason", refused.reason.clone()),
                                ])) { (refused.n) }
                            }
                        }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page("Overview", Some(&session), body))
}

/// Each CRM's last reconcile and webhook check (docs/crm.md, reconcile).
fn reconcile_table(reconciles: &[ReconcileStatus]) -> maud::Markup {
    let or_never = |at: &Option<String>| at.clone().unwrap_or_else(|| "never".into());
    html! {
        table id="reconcile" {
            tr {
                th { "Source" } th { "Last run" } th { "Result" } th { "Listed" } th { "Queued" }
                th { "Refused" } th { "Next run" } th { "Webhook" }
            }
            @for r in reconciles {
                tr data-source=(r.source) {
                    td { (r.source) }
                    td { (or_never(&r.last_run_at)) }
                    td {
                        @match (&r.last_result, &r.last_error) {
                            (Some(result), Some(error)) => { span class="bad" { (result) } ": " (error) }
                            (Some(result), None) => (result),
                            (None, _) => "-",
                        }
                    }
                    td { (r.last_listed) }
                    td { (r.last_queued) }
                    td { (r.last_refused) }
                    td {
                        @match &r.next_run_at {
                            Some(at) => (at),
                            None => "by hand only",
                        }
                    }
                    td {
                        @match &r.subscription {
                            Some(s) if s.state == "ok" => (s.state),
                            Some(s) => {
                                span class="bad" { (s.state) }
                                @if let Some(detail) = &s.detail { ": " (detail) }
                            }
                            None => "not checked",
                        }
                    }
                }
            }
        }
    }
}
