//! A fake of the Pipedrive API a reconcile and `connect` call, on loopback, in Pipedrive's
//! documented shapes: `GET /api/v2/persons` (cursor paging, `limit` at most 500, sorted by
//! `add_time`), `GET|POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`, the `x-api-token` header,
//! and 429 bursts with the rate-limit headers. It counts every request.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use serde_json::{Value, json};

use crate::sources::PIPEDRIVE_TOKEN;

/// Pipedrive's largest page for cursor-paginated lists.
pub const MAX_LIMIT: usize = 500;

#[derive(Default)]
struct State {
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

impl FakePipedrive {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            next_webhook: 7001,
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/api/v2/persons", web::get().to(persons))
                .route("/v1/webhooks", web::get().to(list_webhooks))
                .route("/v1/webhooks", web::post().to(add_webhook))
                .route("/v1/webhooks/{id}", web::delete().to(delete_webhook))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
        }
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
        let hook = webhook(id, url, action, "person", user, active);
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

fn webhook(
    id: u64,
    url: &str,
    action: &str,
    object: &str,
    user: Option<&str>,
    active: bool,
) -> Value {
    json!({"id": id, "company_id": 7654321, "owner_id": 1234567, "user_id": 1234567,
           "event_action": action, "event_object": object, "subscription_url": url,
           "is_active": u8::from(active), "add_time": "2026-01-01 00:00:00", "remove_time": null,
           "type": "general", "http_auth_user": user, "http_auth_password": user.map(|_| "******"),
           "additional_data": [], "remove_reason": null, "last_delivery_time": null,
           "last_http_status": null, "admin_id": 1234567, "version": "2.0"})
}

/// Pipedrive's rate-limit headers on an answer that spent one request of the window.
fn limited_headers(
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
fn admit(request: &HttpRequest, state: &mut State) -> Option<HttpResponse> {
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

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn invalid(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "success": false, "error": message, "code": "ERR_SCHEMA_VALIDATION_FAILED"}))
}

async fn persons(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake Pipedrive state");
    state.person_queries.push(request.query_string().to_owned());
    if let Some(refusal) = admit(&request, &mut state) {
        return refusal;
    }
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(request.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let limit = match param(&query, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return invalid("Validation failed: limit: Value must be between 1 and 500"),
    };
    let sort_by = param(&query, "sort_by").unwrap_or("id");
    if !["id", "update_time", "add_time"].contains(&sort_by) {
        return invalid("Validation failed: sort_by: must be one of id, update_time, add_time");
    }
    let desc = match param(&query, "sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        _ => return invalid("Validation failed: sort_direction: must be asc or desc"),
    };
    let offset = match param(&query, "cursor") {
        None => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(offset) => offset,
            None => return invalid("Validation failed: cursor: invalid cursor"),
        },
    };
    let mut sorted = state.persons.clone();
    sorted.sort_by(|a, b| {
        let key = |p: &Value| (p[sort_by].to_string(), p["id"].as_u64());
        key(a).cmp(&key(b))
    });
    if desc {
        sorted.reverse();
    }
    let page: Vec<Value> = sorted.iter().skip(offset).take(limit).cloned().collect();
    let next = offset + page.len();
    let next_cursor = (next < sorted.len()).then(|| encode_cursor(next));
    limited_headers(HttpResponse::Ok(), 39, 250000).json(json!({
        "success": true, "data": page, "additional_data": {"next_cursor": next_cursor}}))
}

/// Opaque to the client, as Pipedrive's base64 JSON cursors are.
fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({"offset": offset}).to_string())
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    usize::try_from(value["offset"].as_u64()?).ok()
}

fn record(request: &HttpRequest, state: &mut State) {
    let call = (request.method().to_string(), request.path().to_owned());
    state.webhook_calls.push(call);
}

async fn list_webhooks(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake Pipedrive state");
    record(&request, &mut state);
    if let Some(refusal) = admit(&request, &mut state) {
        return refusal;
    }
    limited_headers(HttpResponse::Ok(), 39, 250000)
        .json(json!({"status": "ok", "success": true, "data": state.webhooks}))
}

async fn add_webhook(
    request: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut state = state.lock().expect("fake Pipedrive state");
    record(&request, &mut state);
    if let Some(refusal) = admit(&request, &mut state) {
        return refusal;
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let version = text("version").unwrap_or("1.0");
    let actions: &[&str] = if version == "2.0" {
        &["create", "change", "delete", "*"]
    } else {
        &["added", "updated", "merged", "deleted", "*"]
    };
    let (Some(url), Some(action), Some(object)) = (
        text("subscription_url"),
        text("event_action"),
        text("event_object"),
    ) else {
        return invalid("subscription_url, event_action and event_object are required");
    };
    if !actions.contains(&action) || !url.starts_with("http") {
        return invalid("Validation failed: event_action or subscription_url");
    }
    let id = state.next_webhook;
    state.next_webhook += 1;
    let mut hook = webhook(id, url, action, object, text("http_auth_user"), true);
    hook["version"] = json!(version);
    state.webhooks.push(hook.clone());
    HttpResponse::Created().json(json!({"status": "ok", "success": true, "data": hook}))
}

async fn delete_webhook(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake Pipedrive state");
    record(&request, &mut state);
    if let Some(refusal) = admit(&request, &mut state) {
        return refusal;
    }
    let id: Option<u64> = request
        .match_info()
        .get("id")
        .and_then(|id| id.parse().ok());
    let before = state.webhooks.len();
    state.webhooks.retain(|w| w["id"].as_u64() != id);
    if state.webhooks.len() == before {
        return HttpResponse::NotFound()
            .json(json!({"status": "error", "success": false, "error": "Webhook not found"}));
    }
    HttpResponse::Ok().json(json!({"status": "ok", "success": true}))
}
