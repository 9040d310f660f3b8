//! Fake CRM read APIs on loopback, the two the worker calls: HubSpot's
//! `GET /crm/v3/objects/contacts/{id}` (Bearer private-app token) and Pipedrive's
//! `GET /api/v2/organizations/{id}` (`x-api-token`), each with 404s and 429 bursts carrying the
//! vendor's rate-limit headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub const HUBSPOT_TOKEN: &str = "pat-na1-fake-private-app-token";
pub const PIPEDRIVE_TOKEN: &str = "pd-fake-api-token-0123";

#[derive(Default)]
struct State {
    /// HubSpot contact id → properties
    contacts: HashMap<String, Value>,
    /// Pipedrive organisation id → name
    orgs: HashMap<String, String>,
    /// The next this many reads (of either API) answer 429.
    rate_limited: u32,
    /// Every read, as `{id}?{query}`.
    fetches: Vec<String>,
}

#[derive(Clone)]
pub struct FakeCrm {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

/// The vendor paths this fake answers.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/crm/v3/objects/contacts/{id}", web::get().to(contact))
        .route("/api/v2/organizations/{id}", web::get().to(organization));
}

impl FakeCrm {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let base_url = crate::helpers::serve_fake(state.clone(), routes);
        Self { base_url, state }
    }

    pub fn add_contact(&self, id: &str, properties: Value) {
        self.lock().contacts.insert(id.to_owned(), properties);
    }

    pub fn add_org(&self, id: &str, name: &str) {
        self.lock().orgs.insert(id.to_owned(), name.to_owned());
    }

    pub fn rate_limit_next(&self, reads: u32) {
        self.lock().rate_limited = reads;
    }

    pub fn fetches(&self) -> Vec<String> {
        self.lock().fetches.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake CRM state")
    }
}

/// Checks the token and records the read; `Some` is the answer when the read is refused or
/// rate limited (`too_many`).
fn admit(
    request: &HttpRequest,
    state: &mut State,
    token_header: (&str, &str),
    too_many: impl FnOnce() -> HttpResponse,
) -> Option<HttpResponse> {
    let (header, expected) = token_header;
    let presented = request.headers().get(header).and_then(|v| v.to_str().ok());
    if presented != Some(expected) {
        return Some(
            HttpResponse::Unauthorized()
                .json(json!({"status": "error", "message": "Authentication failed."})),
        );
    }
    let path = request
        .match_info()
        .get("id")
        .unwrap_or_default()
        .to_owned();
    state
        .fetches
        .push(format!("{path}?{}", request.query_string()));
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        return Some(too_many());
    }
    None
}

async fn contact(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake CRM state");
    let bearer = format!("Bearer {HUBSPOT_TOKEN}");
    let too_many = || {
        HttpResponse::TooManyRequests()
            .insert_header(("X-HubSpot-RateLimit-Max", "100"))
            .insert_header(("X-HubSpot-RateLimit-Remaining", "0"))
            .insert_header(("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"))
            .json(json!({
            "status": "error", "errorType": "RATE_LIMIT",
            "message": "You have reached your ten_secondly_rolling limit.",
            "policyName": "TEN_SECONDLY_ROLLING"}))
    };
    if let Some(refusal) = admit(&request, &mut state, ("authorization", &bearer), too_many) {
        return refusal;
    }
    let id = request.match_info().get("id").unwrap_or_default();
    match state.contacts.get(id) {
        Some(properties) => HttpResponse::Ok().json(json!({
            "id": id, "properties": properties, "archived": false,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"})),
        None => HttpResponse::NotFound().json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "resource not found"})),
    }
}

async fn organization(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake CRM state");
    let too_many = || {
        HttpResponse::TooManyRequests()
            .insert_header(("x-ratelimit-limit", "80"))
            .insert_header(("x-ratelimit-remaining", "0"))
            .insert_header(("x-ratelimit-reset", "2"))
            .json(json!({"success": false, "error": "Request over limit"}))
    };
    if let Some(refusal) = admit(
        &request,
        &mut state,
        ("x-api-token", PIPEDRIVE_TOKEN),
        too_many,
    ) {
        return refusal;
    }
    let id = request.match_info().get("id").unwrap_or_default();
    match state.orgs.get(id) {
        Some(name) => HttpResponse::Ok().json(json!({
            "success": true,
            "data": {"id": id.parse::<u64>().unwrap_or_default(), "name": name,
                     "owner_id": 1, "add_time": "2026-01-01T00:00:00Z"}})),
        None => HttpResponse::NotFound()
            .json(json!({"success": false, "error": "Organization not found"})),
    }
}
