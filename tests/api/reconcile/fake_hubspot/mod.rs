//! A fake HubSpot on loopback with the shapes and limits its docs give: the contact search
//! (`createdate` filters and sort, `after` paging, 200 a page, a cap past which paging is a 400,
//! `total`), the contact read the worker makes, 429 bursts with HubSpot's headers, the private-app
//! Bearer token, and the webhooks API v3 of one app (`hapikey`); it counts every request.

mod search;
mod webhooks;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use search::{read, search};
use serde_json::{Map, Value, json};
use webhooks::{create_sub, get_settings, list_subs, patch_sub, put_settings};

pub const TOKEN: &str = "pat-na1-fake-reconcile-token";
pub const DEVELOPER_KEY: &str = "fake-developer-hapikey-0123";
pub const APP_ID: u64 = 54321;
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

/// The vendor paths this fake answers.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/crm/v3/objects/contacts/search", web::post().to(search))
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
        );
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
        let base_url = crate::helpers::serve_fake(state.clone(), routes);
        Self { base_url, state }
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

/// An error answer in HubSpot's shape.
fn error(status: u16, category: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("status");
    HttpResponse::build(status).json(json!({"status": "error", "message": message,
        "correlationId": "00000000-0000-4000-8000-000000000000", "category": category}))
}
