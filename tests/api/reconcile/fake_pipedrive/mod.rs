//! A fake of the Pipedrive API a reconcile and `connect` call, on loopback, in Pipedrive's
//! documented shapes: `GET /api/v2/persons` (cursor paging, `limit` at most 500, sorted by
//! `add_time`), `GET|POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`, the `x-api-token` header,
//! and 429 bursts with the rate-limit headers. It counts every request.

mod persons;
mod webhooks;

use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::sources::PIPEDRIVE_TOKEN;

#[derive(Default)]
pub(super) struct State {
    /// v2 persons, in any order (sorted per request).
    persons: Vec<Value>,
    webhooks: Vec<Value>,
    next_webhook: u64,
    /// The next this many requests (any endpoint) answer a burst 429.
    burst: u32,
    /// The company's daily token budget is spent: every request answers 429.
    daily_spent: bool,
    /// The query string of every persons request, in order.
    person_queries: Vec<String>,
    /// `(method, path)` of every webhooks request.
    webhook_calls: Vec<(String, String)>,
    /// Requests that carried the token as `?api_token=`.
    token_in_query: u32,
}

#[derive(Clone)]
pub struct FakePipedrive {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

/// A v2 person created at `add_time_ms`, with `email` as its primary email if any.
pub fn person(id: u64, email: Option<&str>, add_time_ms: i64) -> Value {
    let add_time = chrono::DateTime::from_timestamp_millis(add_time_ms)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let emails: Vec<Value> = email
        .map(|e| json!({"label": "work", "value": e, "primary": true}))
        .into_iter()
        .collect();
    json!({"id": id, "name": format!("Person {id}"), "first_name": "Person",
           "last_name": id.to_string(), "owner_id": 1234567, "org_id": null,
           "add_time": add_time, "update_time": add_time, "emails": emails, "phones": [],
           "is_deleted": false, "visible_to": 3, "label_ids": [], "picture_id": null,
           "custom_fields": {}})
}

/// The vendor paths this fake answers.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/persons", web::get().to(persons::list))
        .route("/v1/webhooks", web::get().to(webhooks::list))
        .route("/v1/webhooks", web::post().to(webhooks::add))
        .route("/v1/webhooks/{id}", web::delete().to(webhooks::delete));
}

impl FakePipedrive {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            next_webhook: 7001,
            ..State::default()
        }));
        let base_url = crate::helpers::serve_fake(state.clone(), routes);
        Self { base_url, state }
    }

    pub fn add_person(&self, person: Value) {
        self.lock().persons.push(person);
    }

    /// The next `requests` answer 429 as Pipedrive's burst limit does.
    pub fn rate_limit_next(&self, requests: u32) {
        self.lock().burst = requests;
    }

    pub fn spend_daily_budget(&self) {
        self.lock().daily_spent = true;
    }

    pub fn person_queries(&self) -> Vec<String> {
        self.lock().person_queries.clone()
    }

    pub fn webhook_calls(&self) -> Vec<(String, String)> {
        self.lock().webhook_calls.clone()
    }

    pub fn token_in_query(&self) -> u32 {
        self.lock().token_in_query
    }

    pub fn webhooks(&self) -> Vec<Value> {
        self.lock().webhooks.clone()
    }

    /// A webhook as if made in Pipedrive's UI; returns its id.
    pub fn add_webhook(&self, url: &str, action: &str, user: Option<&str>, active: bool) -> u64 {
        let mut state = self.lock();
        let id = state.next_webhook;
        state.next_webhook += 1;
        let hook = webhooks::webhook(id, url, action, "person", user, active);
        state.webhooks.push(hook);
        id
    }

    /// Pipedrive's own removal (after 3 days of failed deliveries).
    pub fn remove_webhook(&self, id: u64) {
        self.lock().webhooks.retain(|w| w["id"] != json!(id));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake Pipedrive state")
    }
}

/// Pipedrive's rate-limit headers on an answer that spent one request of the window.
pub(super) fn limited_headers(
    mut response: actix_web::HttpResponseBuilder,
    left: u32,
    daily_left: u32,
) -> actix_web::HttpResponseBuilder {
    response
        .insert_header(("x-ratelimit-limit", "40"))
        .insert_header(("x-ratelimit-remaining", left.to_string()))
        .insert_header(("x-ratelimit-reset", "2"))
        .insert_header(("x-daily-ratelimit-token-limit", "300000"))
        .insert_header(("x-daily-ratelimit-token-remaining", daily_left.to_string()));
    response
}

/// Checks the token and the limits; `Some` answers instead of the endpoint.
pub(super) fn admit(request: &HttpRequest, state: &mut State) -> Option<HttpResponse> {
    if request.query_string().contains("api_token=") {
        state.token_in_query += 1;
    }
    let token = request
        .headers()
        .get("x-api-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(PIPEDRIVE_TOKEN) {
        return Some(HttpResponse::Unauthorized().json(json!({
            "success": false, "error": "unauthorized access", "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API."})));
    }
    let over = json!({"success": false, "error": "Request over limit", "errorCode": 429});
    if state.daily_spent {
        return Some(limited_headers(HttpResponse::TooManyRequests(), 39, 0).json(over));
    }
    if state.burst > 0 {
        state.burst -= 1;
        return Some(limited_headers(HttpResponse::TooManyRequests(), 0, 250000).json(over));
    }
    None
}
