//! Pipedrive's JSON shapes, in webhooks and the API alike: ids sent as numbers or text, and
//! `[{value, primary}]` lists.

use serde_json::{Map, Value};

pub(crate) fn text<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// A number or a non-empty string, as text.
pub(crate) fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// The primary entry's value from Pipedrive's `[{value, primary, label}]` list (`primary` may be
/// `true` or `"true"`), else the first non-empty one; a bare string is taken as is.
pub(crate) fn primary(list: Option<&Value>) -> Option<String> {
    let entries = match list? {
        Value::String(s) => return Some(s.clone()),
        Value::Array(entries) => entries,
        _ => return None,
    };
    let value = |entry: &Value| {
        entry
            .get("value")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let is_primary = |entry: &&Value| {
        matches!(entry.get("primary"), Some(Value::Bool(true)))
            || entry.get("primary").and_then(Value::as_str) == Some("true")
    };
    entries
        .iter()
        .filter(is_primary)
        .find_map(value)
        .or_else(|| entries.iter().find_map(value))
}
