//! `POST /reconcile/{source}`: one reconcile of a CRM by hand (what `tallyfy-bridge reconcile`
//! calls), answered with its report once it has run.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::page::{BadParam, parse_time};
use super::{OpsState, bad_param, internal, not_found, refuse, unknown};
use crate::api_error::json_error;
use crate::ops::audit::AuditNote;
use crate::reconcile::{RunError, RunReport, RunRequest};
use crate::time::now_ms;

/// Longest look-back `days` allows: ten years.
const MAX_DAYS: u64 = 3650;

/// The request body: every field optional, an empty body allowed.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReconcileBody {
    /// RFC 3339: list contacts created from here (instead of the watermark less the overlap).
    #[schema(format = DateTime)]
    since: Option<String>,
    /// Or: from this many days ago (1 to 3650). Not with `since`.
    #[schema(minimum = 1, maximum = 3650)]
    days: Option<u64>,
    /// Count what would be queued; queue and keep nothing, leave the watermark.
    dry_run: Option<bool>,
}

#[utoipa::path(post, path = "/reconcile/{source}", tag = "admin", security(("admin_token" = [])),
    params(("source" = String, Path, description = "`pipedrive`, `hubspot` or `salesforce`")),
    request_body(content = Option<ReconcileBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The run's report; `error` says why it stopped early (what it listed before is queued)", body = RunReport),
        (status = 400, description = "A bad or unknown field (`bad_request`, `field` names it)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured, or the source's API credentials are not (`not_found`)", body = crate::api_error::ErrorBody),
        (status = 409, description = "A run of this source is going (`conflict`)", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be written", body = crate::api_error::ErrorBody),
    ))]
pub async fn run(
    request: HttpRequest,
    source: web::Path<String>,
    body: web::Bytes,
    state: web::Data<OpsState>,
) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let (since, dry_run) = match parse(&body, now_ms()) {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(bad),
    };
    let run = RunRequest {
        since,
        dry_run,
        note: AuditNote::of(&request),
    };
    match state.reconciler.run(&source, run).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(RunError::NotConfigured(_)) => {
            not_found("source to reconcile (its API credentials are not configured)")
        }
        Err(error @ RunError::Running(_)) => {
            json_error(StatusCode::CONFLICT, "conflict", error.to_string(), None)
        }
        Err(RunError::Store(error)) => internal(error),
    }
}

/// `since` (ms) and `dry_run` from the body.
fn parse(body: &[u8], now: i64) -> Result<(Option<i64>, bool), BadParam> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, false));
    }
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| BadParam::new("body", "the body must be a JSON object"))?;
    const KNOWN: [&str; 3] = ["since", "days", "dry_run"];
    let (mut since, mut days, mut dry_run) = (None, None, false);
    for (key, value) in object {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("since", Value::String(text)) => since = Some(parse_time("since", &text)?),
            ("since", _) => return Err(BadParam::new("since", "since must be an RFC 3339 time")),
            ("days", value) => {
                let n = value
                    .as_u64()
                    .filter(|n| (1..=MAX_DAYS).contains(n))
                    .ok_or_else(|| {
                        BadParam::new(
                            "days",
                            format!("days must be a whole number, 1 to {MAX_DAYS}"),
                        )
                    })?;
                days = Some(n);
            }
            ("dry_run", Value::Bool(b)) => dry_run = b,
            ("dry_run", _) => {
                return Err(BadParam::new("dry_run", "dry_run must be true or false"));
            }
            (other, _) => return Err(unknown("body", other, &KNOWN)),
        }
    }
    let since = match (since, days) {
        (Some(_), Some(_)) => {
            return Err(BadParam::new("days", "give since or days, not both"));
        }
        (Some(since), None) if since > now => {
            return Err(BadParam::new("since", "since must not be in the future"));
        }
        (Some(since), None) => Some(since),
        (None, Some(days)) => Some(now - (days as i64) * 86_400_000),
        (None, None) => None,
    };
    Ok((since, dry_run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_a_time_or_days_and_a_dry_run() {
        let now = 1_800_000_000_000;
        assert_eq!(parse(b"", now), Ok((None, false)));
        assert_eq!(parse(b"{}", now), Ok((None, false)));
        assert_eq!(
            parse(br#"{"days": 2, "dry_run": true}"#, now),
            Ok((Some(now - 2 * 86_400_000), true))
        );
        assert_eq!(
            parse(br#"{"since": "2026-12-01T00:00:00Z"}"#, now),
            Ok((Some(1796083200000), false))
        );
        for (body, field) in [
            (r#"{"since": "2026-12-01T00:00:00Z", "days": 1}"#, "days"),
            (r#"{"days": 0}"#, "days"),
            (r#"{"days": -1}"#, "days"),
            (r#"{"since": "yesterday"}"#, "since"),
            (r#"{"since": "2099-01-01T00:00:00Z"}"#, "since"),
            (r#"{"dry_run": "yes"}"#, "dry_run"),
            (r#"{"sinse": "2026-12-01T00:00:00Z"}"#, "body"),
            ("[1]", "body"),
        ] {
            let bad = parse(body.as_bytes(), now).expect_err(body);
            assert_eq!(bad.field, field, "{body}");
        }
    }
}
