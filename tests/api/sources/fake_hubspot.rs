//! A fake HubSpot CRM API on loopback: `GET /crm/v3/objects/contacts/{id}` with the private-app
//! token check, 404 for unknown contacts and 429 bursts with HubSpot's rate-limit headers.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

pub const HUBSPOT_TOKEN: &str = "pat-na1-fake-private-app-token";

#[derive(Default)]
struct State {
    /// contact id → properties
    contacts: HashMap<String, Value>,
    /// The next this many fetches answer 429.
    rate_limited: u32,
    /// Every fetch, as `{id}?{query}`.
    fetches: Vec<String>,
}

#[derive(Clone)]
pub struct FakeHubSpot {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeHubSpot {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/crm/v3/objects/contacts/{id}", web::get().to(contact))
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

    pub fn add_contact(&self, id: &str, properties: Value) {
        self.lock().contacts.insert(id.to_owned(), properties);
    }

    pub fn rate_limit_next(&self, fetches: u32) {
        self.lock().rate_limited = fetches;
    }

    pub fn fetches(&self) -> Vec<String> {
        self.lock().fetches.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake HubSpot state")
    }
}

async fn contact(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {HUBSPOT_TOKEN}"));
    if !authorized {
        return HttpResponse::Unauthorized().json(json!({
            "status": "error", "category": "INVALID_AUTHENTICATION",
            "message": "Authentication credentials not found."}));
    }
    let mut state = state.lock().expect("fake HubSpot state");
    state
        .fetches
        .push(format!("{}?{}", id.as_str(), request.query_string()));
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        return HttpResponse::TooManyRequests()
            .insert_header(("X-HubSpot-RateLimit-Max", "100"))
            .insert_header(("X-HubSpot-RateLimit-Remaining", "0"))
            .insert_header(("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"))
            .json(json!({
                "status": "error", "errorType": "RATE_LIMIT",
                "message": "You have reached your ten_secondly_rolling limit.",
                "policyName": "TEN_SECONDLY_ROLLING"}));
    }
    match state.contacts.get(id.as_str()) {
        Some(properties) => HttpResponse::Ok().json(json!({
            "id": id.as_str(), "properties": properties, "archived": false,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"})),
        None => HttpResponse::NotFound().json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "resource not found"})),
    }
}
