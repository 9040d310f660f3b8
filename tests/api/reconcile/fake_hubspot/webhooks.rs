//! The fake's webhooks API v3 of one app: settings and subscriptions, behind the developer key.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{APP_ID, DEVELOPER_KEY, Shared, State, Sub, error};

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

pub(super) async fn get_settings(request: HttpRequest, state: Shared) -> HttpResponse {
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

pub(super) async fn put_settings(
    request: HttpRequest,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
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

pub(super) async fn list_subs(request: HttpRequest, state: Shared) -> HttpResponse {
    let mut state = state.lock().expect("fake HubSpot state");
    if let Some(refused) = webhooks_refused(&request, &mut state) {
        return refused;
    }
    let results: Vec<Value> = state.subscriptions.iter().map(sub_json).collect();
    HttpResponse::Ok().json(json!({"results": results}))
}

pub(super) async fn create_sub(
    request: HttpRequest,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
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

pub(super) async fn patch_sub(
    request: HttpRequest,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
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
