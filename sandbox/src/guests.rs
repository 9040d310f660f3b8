//! The fake guest API: routes, Tallyfy's header and token checks, fault injection, and the
//! create / find / list handlers answering in Tallyfy's documented shapes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::server::{
    Reply, Resp, bad_request, json_response, json_with_headers, not_found, read_json,
};
use super::state::{CreateOutcome, PreFault, Shared};
use super::validate::validate;

pub(crate) enum GuestRoute {
    Create { org: String },
    Find { org: String, email: String },
    List { org: String, query: String },
}

impl GuestRoute {
    /// Accepts paths with or without an `/api` prefix, like Tallyfy's two hosts.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Option<Self> {
        let path = path.strip_prefix("/api").unwrap_or(path);
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let org = segments.get(1).cloned().unwrap_or_default();
        match (method, segments.as_slice()) {
            (&Method::POST, [o, _, g]) if o == "organizations" && g == "guests" => {
                Some(Self::Create { org })
            }
            (&Method::GET, [o, _, g]) if o == "organizations" && g == "guests" => {
                Some(Self::List {
                    org,
                    query: query.unwrap_or_default().to_owned(),
                })
            }
            (&Method::GET, [o, _, g, email]) if o == "organizations" && g == "guests" => {
                Some(Self::Find {
                    org,
                    email: email.clone(),
                })
            }
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create_guest",
            Self::Find { .. } => "find_guest",
            Self::List { .. } => "list_guests",
        }
    }

    fn org(&self) -> &str {
        match self {
            Self::Create { org } | Self::Find { org, .. } | Self::List { org, .. } => org,
        }
    }
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    route: GuestRoute,
    shared: &Arc<Shared>,
) -> Reply {
    let (latency, fault) = {
        let mut state = shared.lock();
        state.count_request(route.name());
        state.roll_pre_faults()
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        PreFault::None => {}
        PreFault::Burst429 { retry_after_secs } => {
            let as_date = shared.lock().faults.retry_after_http_date;
            return Reply::Send(rate_limited(
                retry_after_secs,
                as_date,
                "Too Many Attempts.",
            ));
        }
        PreFault::ServerError(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"error": true, "message": "Injected error"});
            return Reply::Send(json_response(status, &body));
        }
        PreFault::Hang(duration) => {
            tokio::time::sleep(duration).await;
            return Reply::Drop;
        }
    }
    let is_post = matches!(route, GuestRoute::Create { .. });
    if let Some(denied) = deny_access(req.headers(), route.org(), is_post, shared) {
        return Reply::Send(denied);
    }
    match route {
        GuestRoute::Create { .. } => create(req, shared).await,
        GuestRoute::Find { email, .. } => Reply::Send(match shared.lock().find(&email) {
            Some(guest) => json_response(StatusCode::OK, &json!({ "data": guest })),
            None => not_found(),
        }),
        GuestRoute::List { query, .. } => Reply::Send(list(&query, shared)),
    }
}

/// `Some(answer)` refuses. Order: token (401); Tallyfy's required headers (400: a client bug,
/// not an auth problem, so the bridge fails loudly instead of pausing); org (403, as Tallyfy
/// does for an org the token cannot access).
fn deny_access(headers: &HeaderMap, org: &str, is_post: bool, shared: &Shared) -> Option<Resp> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut state = shared.lock();
    let bearer = header(AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| state.accepts(token, Instant::now())) {
        state.stats.unauthorized += 1;
        let body = json!({"error": true, "message": "Unauthenticated."});
        return Some(json_response(StatusCode::UNAUTHORIZED, &body));
    }
    if !header("x-tallyfy-client").is_some_and(|v| v.eq_ignore_ascii_case("APIClient")) {
        return Some(bad_request(
            "The X-Tallyfy-Client header is required (APIClient).",
        ));
    }
    if !header(ACCEPT.as_str()).is_some_and(|v| v.contains("application/json")) {
        return Some(bad_request(
            "The Accept header must include application/json.",
        ));
    }
    if is_post && !header(CONTENT_TYPE.as_str()).is_some_and(|v| v.starts_with("application/json"))
    {
        return Some(bad_request(
            "The Content-Type header must be application/json.",
        ));
    }
    if org != state.org_id {
        state.stats.unauthorized += 1;
        let body =
            json!({"error": true, "message": "You do not have access to this organization."});
        return Some(json_response(StatusCode::FORBIDDEN, &body));
    }
    None
}

async fn create(req: Request<Incoming>, shared: &Shared) -> Reply {
    let body = match read_json(req).await {
        Ok(body) => body,
        Err(resp) => return Reply::Send(resp),
    };
    let guest = match validate(&body) {
        Ok(guest) => guest,
        // The `{"error": true, "errors": ..}` shape; duplicates use Laravel's other one.
        Err(errors) => {
            let body = json!({"error": true, "errors": errors});
            return Reply::Send(json_response(StatusCode::UNPROCESSABLE_ENTITY, &body));
        }
    };
    let (outcome, as_date) = {
        let mut state = shared.lock();
        (
            state.create(guest, Instant::now()),
            state.faults.retry_after_http_date,
        )
    };
    Reply::Send(match outcome {
        CreateOutcome::Created {
            drop_connection: true,
            ..
        } => return Reply::Drop,
        CreateOutcome::Created { guest, .. } => {
            json_response(StatusCode::CREATED, &json!({ "data": guest }))
        }
        CreateOutcome::Linked(guest) => json_response(StatusCode::OK, &json!({ "data": guest })),
        CreateOutcome::Duplicate => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "The given data was invalid.",
                    "errors": {"email": ["The email has already been taken."]}}),
        ),
        CreateOutcome::CapReached {
            retry_after_secs,
            cap,
        } => rate_limited(
            retry_after_secs,
            as_date,
            &format!(
                "You've reached the hourly limit for Guest Invite ({cap} per hour per \
                 organization). Please try again later."
            ),
        ),
    })
}

fn rate_limited(retry_after_secs: u64, as_date: bool, message: &str) -> Resp {
    let retry_after = if as_date {
        let at = std::time::SystemTime::now() + Duration::from_secs(retry_after_secs);
        HeaderValue::from_str(&httpdate::fmt_http_date(at))
            .unwrap_or_else(|_| HeaderValue::from(retry_after_secs))
    } else {
        HeaderValue::from(retry_after_secs)
    };
    json_with_headers(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"message": message, "code": "RATE_LIMIT_EXCEEDED"}),
        &[(RETRY_AFTER, retry_after)],
    )
}

fn list(query: &str, shared: &Shared) -> Resp {
    let (mut q, mut page, mut per_page) = (String::new(), 1usize, 10usize);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(&value.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "q" => q = value,
            "page" => page = value.parse().unwrap_or(1).max(1),
            "per_page" => per_page = value.parse().unwrap_or(10).clamp(1, 100),
            _ => {}
        }
    }
    let (items, total) = shared.lock().list(&q, page, per_page);
    let body = json!({
        "data": items,
        "meta": {"pagination": {
            "total": total,
            "count": items.len(),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total.div_ceil(per_page),
        }},
    });
    json_response(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_or_without_api_prefix() {
        let find = GuestRoute::parse(
            &Method::GET,
            "/api/organizations/o/guests/a%2Bb%40x.io",
            None,
        );
        assert!(matches!(find, Some(GuestRoute::Find { ref email, .. }) if email == "a+b@x.io"));
        let create = GuestRoute::parse(&Method::POST, "/organizations/o/guests/", None);
        assert!(matches!(create, Some(GuestRoute::Create { ref org }) if org == "o"));
        assert!(GuestRoute::parse(&Method::DELETE, "/organizations/o/guests/x", None).is_none());
        assert!(GuestRoute::parse(&Method::GET, "/organizations/o/members", None).is_none());
    }
}
