//! The fake's contact search and contact read, as HubSpot documents them.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use super::{Contact, Shared, TOKEN, error};

/// HubSpot's documented maximum page size.
const MAX_LIMIT: u64 = 200;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
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

pub(super) async fn search(
    request: HttpRequest,
    body: web::Json<Value>,
    state: Shared,
) -> HttpResponse {
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

pub(super) async fn read(request: HttpRequest, state: Shared) -> HttpResponse {
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
