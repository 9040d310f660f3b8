//! A fake HubSpot on loopback with the shapes and limits its docs give: the contact search
//! (`createdate` filters and sort, `after` paging, 200 a page, a cap past which paging is a 400,
//! `total`), the contact read the worker makes, 429 bursts with HubSpot's headers, the private-app
//! Bearer token, and the webhooks API v3 of one app (`hapikey`); it counts every request.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

pub const TOKEN: &str = "pat-na1-fake-reconcile-token";
pub const DEVELOPER_KEY: &str = "fake-developer-hapikey-0123";
pub const APP_ID: u64 = 54321;
/// HubSpot's documented maximum page size.
const MAX_LIMIT: u64 = 200;

/// A contact as the fake keeps it.
#[derive(Clone)]
struct Contact {
    id: u64,
    created_at: i64,
    properties: Map<String, Value>,
}

/// A webhook subscription of the app, as `GET .../subscriptions` shows it.
#[derive(Clone)]
pub struct Sub {
    pub id: u64,
    pub event_type: String,
    pub property_name: Option<String>,
    pub active: bool,
}

struct State {
    contacts: Vec<Contact>,
    /// Results one query can page through (HubSpot: 10,000).
    cap: u64,
    /// The next this many searches answer 429, asking to wait `limited_ms`.
    rate_limited: u32,
    limited_ms: u64,
    /// Every search body, and when it arrived.
    searches: Vec<(Instant, Value)>,
    /// Worker reads of one contact.
    reads: u32,
    target_url: Option<String>,
    subscriptions: Vec<Sub>,
    /// Webhooks API requests, as `METHOD /path`.
    webhook_calls: Vec<String>,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeHubSpot {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeHubSpot {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            contacts: Vec::new(),
            cap: 10_000,
            rate_limited: 0,
            limited_ms: 10_000,
            searches: Vec::new(),
            reads: 0,
            target_url: None,
            subscriptions: Vec::new(),
            webhook_calls: Vec::new(),
            next_id: 2_400_001,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/crm/v3/objects/contacts/search", web::post().to(search))
                .route("/crm/v3/objects/contacts/{id}", web::get().to(read))
                .route("/webhooks/v3/{app}/settings", web::get().to(get_settings))
                .route("/webhooks/v3/{app}/settings", web::put().to(put_settings))
                .route("/webhooks/v3/{app}/subscriptions", web::get().to(list_subs))
                .route(
                    "/webhooks/v3/{app}/subscriptions",
                    web::post().to(create_sub),
                )
                .route(
                    "/webhooks/v3/{app}/subscriptions/{id}",
                    web::patch().to(patch_sub),
                )
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

    /// Contact `id` created at `created_at` (ms) with `properties`.
    pub fn add(&self, id: u64, created_at: i64, properties: Value) {
        let properties = properties.as_object().cloned().unwrap_or_default();
        let mut state = self.lock();
        state.contacts.retain(|c| c.id != id);
        state.contacts.push(Contact {
            id,
            created_at,
            properties,
        });
    }

    /// Sets (or adds) one property of contact `id`, as an edit in HubSpot would.
    pub fn set(&self, id: u64, property: &str, value: Value) {
        let mut state = self.lock();
        if let Some(contact) = state.contacts.iter_mut().find(|c| c.id == id) {
            contact.properties.insert(property.to_owned(), value);
        }
    }

    pub fn set_cap(&self, cap: u64) {
        self.lock().cap = cap;
    }

    /// The next `searches` answer 429 with a rate-limit window of `window_ms`.
    pub fn rate_limit_next(&self, searches: u32, window_ms: u64) {
        let mut state = self.lock();
        state.rate_limited = searches;
        state.limited_ms = window_ms;
    }

    /// The search bodies received, in order.
    pub fn searches(&self) -> Vec<Value> {
        self.lock()
            .searches
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The time between each search and the one before it.
    pub fn search_gaps(&self) -> Vec<Duration> {
        let state = self.lock();
        state
            .searches
            .windows(2)
            .map(|pair| pair[1].0.duration_since(pair[0].0))
            .collect()
    }

    pub fn reads(&self) -> u32 {
        self.lock().reads
    }

    pub fn set_target_url(&self, url: &str) {
        self.lock().target_url = Some(url.to_owned());
    }

    pub fn target_url(&self) -> Option<String> {
        self.lock().target_url.clone()
    }

    pub fn add_subscription(&self, event_type: &str, property: Option<&str>, active: bool) {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.subscriptions.push(Sub {
            id,
            event_type: event_type.into(),
            property_name: property.map(str::to_owned),
            active,
        });
    }

    pub fn subscriptions(&self) -> Vec<Sub> {
        self.lock().subscriptions.clone()
    }

    /// Webhooks API requests other than reads (`PUT`, `POST`, `PATCH`), as `METHOD /path`.
    pub fn webhook_writes(&self) -> Vec<String> {
        let state = self.lock();
        state
            .webhook_calls
            .iter()
            .filter(|call| !call.starts_with("GET"))
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake HubSpot state")
    }
}

type Shared = web::Data<Mutex<State>>;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn error(status: u16, category: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("status");
    HttpResponse::build(status).json(json!({"status": "error", "message": message,
        "correlationId": "00000000-0000-4000-8000-000000000000", "category": category}))
}

/// The private-app token, as HubSpot checks it.
fn bearer_refused(request: &HttpRequest) -> Option<HttpResponse> {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    (presented != Some(&format!("Bearer {TOKEN}"))).then(|| {
        error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        )
    })
}

/// The contact as the API shows it: the requested properties (null when unset) and the defaults.
fn shown(contact: &Contact, properties: &[String]) -> Value {
    let mut shown = Map::new();
    for name in properties {
        let value = contact.properties.get(name).cloned().unwrap_or(Value::Null);
        shown.insert(name.clone(), value);
    }
    shown.insert("createdate".into(), json!(iso(contact.created_at)));
    shown.insert("hs_object_id".into(), json!(contact.id.to_string()));
    shown.insert("lastmodifieddate".into(), json!(iso(contact.created_at)));
    json!({"id": contact.id.to_string(), "properties": shown, "archived": false,
           "createdAt": iso(contact.created_at), "updatedAt": iso(contact.created_at)})
}

/// `createdate` bounds of a search body; `Err` names what the fake (or HubSpot) refuses.
fn bounds(body: &Value) -> Result<(i64, i64), String> {
    let (mut since, mut until) = (i64::MIN, i64::MAX);
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    for group in groups {
        for filter in group["filters"].as_array().cloned().unwrap_or_default() {
            if filter["propertyName"] != "createdate" {
                return Err(format!("the fake filters on createdate only: {filter}"));
            }
            let value: i64 = filter["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("a createdate value is ms as a string: {filter}"))?;
            match filter["operator"].as_str() {
                Some("GTE") => since = since.max(value),
                Some("LT") => until = until.min(value),
                other => return Err(format!("operator {other:?} is not faked")),
            }
        }
    }
    Ok((since, until))
}

async fn search(request: HttpRequest, body: web::Json<Value>, state: Shared) -> HttpResponse {
    if let Some(refused) = bearer_refused(&request) {
        return refused;
    }
    let mut state = state.lock().expect("fake HubSpot state");
    let body = body.into_inner();
    state.searches.push((Instant::now(), body.clone()));
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        return HttpResponse::TooManyRequests()
            .insert_header(("X-HubSpot-RateLimit-Max", "5"))
            .insert_header(("X-HubSpot-RateLimit-Remaining", "0"))
            .insert_header((
                "X-HubSpot-RateLimit-Interval-Milliseconds",
                state.limited_ms.to_string(),
            ))
            .json(json!({"status": "error", "errorType": "RATE_LIMIT",
                "message": "You have reached your secondly limit.", "policyName": "SECONDLY",
                "correlationId": "00000000-0000-4000-8000-000000000001"}));
    }
    let (since, until) = match bounds(&body) {
        Ok(bounds) => bounds,
        Err(message) => return error(400, "VALIDATION_ERROR", &message),
    };
    let ascending = body["sorts"][0]["propertyName"] == "createdate"
        && body["sorts"][0]["direction"] == "ASCENDING";
    if !ascending {
        return error(
            400,
            "VALIDATION_ERROR",
            "the fake sorts by createdate ascending only",
        );
    }
    let limit = body["limit"].as_u64().unwrap_or(10);
    if limit > MAX_LIMIT {
        return error(400, "VALIDATION_ERROR", "limit must be at most 200");
    }
    let offset: u64 = match &body["after"] {
        Value::Null => 0,
        after => match after.as_str().and_then(|a| a.parse().ok()) {
            Some(offset) => offset,
            None => return error(400, "VALIDATION_ERROR", "after is a paging token"),
        },
    };
    if offset >= state.cap {
        return error(
            400,
            "VALIDATION_ERROR",
            "Cannot page past 10000 results. Narrow your search or use a smaller limit.",
        );
    }
    let mut matching: Vec<&Contact> = state
        .contacts
        .iter()
        .filter(|c| c.created_at >= since && c.created_at < until)
        .collect();
    matching.sort_by_key(|c| (c.created_at, c.id));
    let total = matching.len() as u64;
    let end = (offset + limit).min(total).min(state.cap);
    let properties: Vec<String> = body["properties"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let results: Vec<Value> = matching
        .get(offset as usize..end as usize)
        .unwrap_or_default()
        .iter()
        .map(|c| shown(c, &properties))
        .collect();
    let mut answer = json!({"total": total, "results": results});
    if end < total {
        answer["paging"] = json!({"next": {"after": end.to_string(),
            "link": format!("?after={end}")}});
    }
    HttpResponse::Ok().json(answer)
}

async fn read(request: HttpRequest, state: Shared) -> HttpResponse {
    if let Some(refused) = bearer_refused(&request) {
        return refused;
    }
    let mut state = state.lock().expect("fake HubSpot state");
    state.reads += 1;
    let id: u64 = request
        .match_info()
        .get("id")
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let properties: Vec<String> = request
        .query_string()
        .strip_prefix("properties=")
        .map(|names| names.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    match state.contacts.iter().find(|c| c.id == id) {
        Some(contact) => HttpResponse::Ok().json(shown(contact, &properties)),
        None => error(404, "OBJECT_NOT_FOUND", "resource not found"),
    }
}

/// The developer API key and the app id, as the webhooks API checks them; records the call.
fn webhooks_refused(request: &HttpRequest, state: &mut State) -> Option<HttpResponse> {
    let key = request
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("hapikey="));
    if key != Some(DEVELOPER_KEY) {
        return Some(error(
            401,
            "INVALID_AUTHENTICATION",
            "The API key provided is invalid.",
        ));
    }
    state
        .webhook_calls
        .push(format!("{} {}", request.method(), request.path()));
    let app = request.match_info().get("app").unwrap_or_default();
    (app != APP_ID.to_string()).then(|| error(404, "OBJECT_NOT_FOUND", "app not found"))
}

fn sub_json(sub: &Sub) -> Value {
    let mut shown = json!({"id": sub.id.to_string(), "eventType": sub.event_type,
        "active": sub.active, "createdAt": "2026-11-01T10:00:00.000Z",
        "updatedAt": "2026-11-01T10:00:00.000Z"});
    if let Some(property) = &sub.property_name {
        shown["propertyName"] = json!(property);
    }
    shown
}

async fn get_settings(request: HttpRequest, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    match &state.target_url {
        Some(url) => HttpResponse::Ok().json(json!({"targetUrl": url,
            "throttling": {"maxConcurrentRequests": 10, "period": "SECONDLY"},
            "createdAt": "2026-11-01T10:00:00.000Z"})),
        None => error(404, "OBJECT_NOT_FOUND", "No settings found for this app."),
    }
}

async fn put_settings(request: HttpRequest, body: web::Json<Value>, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    let (Some(url), Some(max)) = (
        body["targetUrl"].as_str(),
        body["throttling"]["maxConcurrentRequests"].as_u64(),
    ) else {
        return error(
            400,
            "VALIDATION_ERROR",
            "targetUrl and throttling are required",
        );
    };
    state.target_url = Some(url.to_owned());
    HttpResponse::Ok().json(json!({"targetUrl": url,
        "throttling": {"maxConcurrentRequests": max}}))
}

async fn list_subs(request: HttpRequest, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    let results: Vec<Value> = state.subscriptions.iter().map(sub_json).collect();
    HttpResponse::Ok().json(json!({"results": results}))
}

async fn create_sub(request: HttpRequest, body: web::Json<Value>, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    let Some(event_type) = body["eventType"].as_str() else {
        return error(400, "VALIDATION_ERROR", "eventType is required");
    };
    let property = body["propertyName"].as_str();
    if event_type.ends_with(".propertyChange") != property.is_some() {
        return error(
            400,
            "VALIDATION_ERROR",
            "propertyName goes with propertyChange only",
        );
    }
    let id = state.next_id;
    state.next_id += 1;
    let sub = Sub {
        id,
        event_type: event_type.into(),
        property_name: property.map(str::to_owned),
        active: body["active"].as_bool().unwrap_or(false),
    };
    let shown = sub_json(&sub);
    state.subscriptions.push(sub);
    HttpResponse::Created().json(shown)
}

async fn patch_sub(request: HttpRequest, body: web::Json<Value>, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    let id: u64 = request
        .match_info()
        .get("id")
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let Some(active) = body["active"].as_bool() else {
        return error(400, "VALIDATION_ERROR", "active is required");
    };
    match state.subscriptions.iter_mut().find(|s| s.id == id) {
        Some(sub) => {
            sub.active = active;
            let shown = sub_json(sub);
            HttpResponse::Ok().json(shown)
        }
        None => error(404, "OBJECT_NOT_FOUND", "subscription not found"),
    }
}
