//! The fake's `GET /api/v2/persons`: Pipedrive's query parameters checked (`limit` 1–500,
//! `sort_by`, `sort_direction`), opaque base64 cursors, `additional_data.next_cursor`.

use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::{Value, json};

use super::{State, admit, limited_headers};

/// Pipedrive's largest page for cursor-paginated lists.
const MAX_LIMIT: usize = 500;

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn invalid(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "success": false, "error": message, "code": "ERR_SCHEMA_VALIDATION_FAILED"}))
}

pub(super) async fn list(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
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
