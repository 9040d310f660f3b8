//! The fake's `/v1/webhooks`: list, create (Pipedrive's v1 or v2 action names by `version`)
//! and delete, in Pipedrive's response shapes; every call recorded.

use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::persons::invalid;
use super::{State, admit, limited_headers};

pub(super) fn webhook(
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

fn record(request: &HttpRequest, state: &mut State) {
    let call = (request.method().to_string(), request.path().to_owned());
    state.webhook_calls.push(call);
}

pub(super) async fn list(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("fake Pipedrive state");
    record(&request, &mut state);
    if let Some(refusal) = admit(&request, &mut state) {
        return refusal;
    }
    limited_headers(HttpResponse::Ok(), 39, 250000)
        .json(json!({"status": "ok", "success": true, "data": state.webhooks}))
}

pub(super) async fn add(
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

pub(super) async fn delete(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
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
