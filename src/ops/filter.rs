//! What the admin lists and bulk changes select: the filter (`state`, `source`, `email`,
//! `since`, `until`) from a query string or a bulk body, each bad or unknown field a 400 naming it.

use actix_web::HttpRequest;
use serde::Serialize;
use serde_json::Value;

use super::deliveries::RowAction;
use super::page::{BadParam, parse_time};
use super::{query_pairs, unknown};
use crate::domain::lookup_key;
use crate::outbox::RowState;

/// Rows a bulk change moves when the caller does not say.
pub const BULK_DEFAULT: usize = 1000;
/// The most rows one bulk change may move.
pub const BULK_MAX: usize = 10_000;

/// Which rows: every field given must match. Times are ms on `received_at` (since inclusive,
/// until exclusive); the email is a lookup key (normalised as ingest stores it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RowState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time::serialize_opt_ms"
    )]
    pub since: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time::serialize_opt_ms"
    )]
    pub until: Option<i64>,
}

pub(crate) const FILTER_FIELDS: [&str; 5] = ["state", "source", "email", "since", "until"];

/// Parameters by their static field name, as given.
pub(crate) type Fields = Vec<(&'static str, String)>;

/// Reads the filter fields of `pairs` into a filter, and hands back the rest.
pub(crate) fn parse_filter(pairs: Fields) -> Result<(DeliveryFilter, Fields), BadParam> {
    let mut filter = DeliveryFilter::default();
    let mut rest = Vec::new();
    for (field, value) in pairs {
        match field {
            "state" => {
                let names: Vec<&str> = RowState::ALL.iter().map(|s| s.as_str()).collect();
                let state = value.parse().map_err(|()| {
                    BadParam::new(
                        "state",
                        format!("state must be one of {}", names.join(", ")),
                    )
                })?;
                filter.state = Some(state);
            }
            "source" if value.is_empty() => {
                return Err(BadParam::new("source", "source must not be empty"));
            }
            "source" => filter.source = Some(value),
            "email" => filter.email = Some(lookup_key(&value)),
            "since" => filter.since = Some(parse_time("since", &value)?),
            "until" => filter.until = Some(parse_time("until", &value)?),
            _ => rest.push((field, value)),
        }
    }
    Ok((filter, rest))
}

/// The known query parameters of `request`, each named by its static field name.
pub(crate) fn known_pairs(
    request: &HttpRequest,
    known: &[&'static str],
) -> Result<Fields, BadParam> {
    query_pairs(request)?
        .into_iter()
        .map(|(key, value)| match known.iter().find(|k| **k == key) {
            Some(field) => Ok((*field, value)),
            None => Err(unknown("query", &key, known)),
        })
        .collect()
}

/// The bulk body `{"state", "source"?, "email"?, "since"?, "until"?, "limit"?}`, checked.
pub(super) fn parse_bulk(
    body: &[u8],
    action: RowAction,
) -> Result<(DeliveryFilter, usize), BadParam> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| BadParam::new("body", "the body must be a JSON object"))?;
    let known = [&FILTER_FIELDS[..], &["limit"]].concat();
    let mut pairs = Vec::new();
    for (key, value) in object {
        let Some(field) = known.iter().find(|k| **k == key).copied() else {
            return Err(unknown("body", &key, &known));
        };
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            Value::Number(n) if field == "limit" => n.to_string(),
            _ if field == "limit" => return Err(BadParam::new("limit", "limit must be a number")),
            _ => return Err(BadParam::new(field, format!("{field} must be a string"))),
        };
        pairs.push((field, text));
    }
    let (filter, rest) = parse_filter(pairs)?;
    check_bulk(&filter, action)?;
    let limit = match rest.first() {
        None => BULK_DEFAULT,
        Some((_, text)) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=BULK_MAX).contains(n))
            .ok_or_else(|| BadParam::new("limit", format!("limit must be 1 to {BULK_MAX}")))?,
    };
    Ok((filter, limit))
}

/// A bulk change names a state, one `action` applies to.
pub(crate) fn check_bulk(filter: &DeliveryFilter, action: RowAction) -> Result<(), BadParam> {
    let Some(from) = filter.state else {
        return Err(BadParam::new(
            "state",
            format!("state is required: {}", action.allowed()),
        ));
    };
    if !action.from_states().contains(&from) {
        return Err(BadParam::new(
            "state",
            format!("state must be {}", action.allowed()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_body_needs_a_state_the_action_applies_to() {
        let field = |body: &str, action| parse_bulk(body.as_bytes(), action).map_err(|e| e.field);
        assert_eq!(field("{}", RowAction::Retry).err(), Some("state"));
        assert_eq!(
            field(r#"{"state":"queued"}"#, RowAction::Retry).err(),
            Some("state")
        );
        assert_eq!(
            field(r#"{"state":"delivered"}"#, RowAction::Cancel).err(),
            Some("state")
        );
        assert_eq!(
            field(r#"{"state":"failed","limit":0}"#, RowAction::Retry).err(),
            Some("limit")
        );
        assert_eq!(
            field(r#"{"state":"failed","limit":10001}"#, RowAction::Retry).err(),
            Some("limit")
        );
        assert_eq!(
            field(r#"{"state":"failed","sorce":"x"}"#, RowAction::Retry).err(),
            Some("body")
        );
        assert_eq!(
            field(r#"{"state":"failed","since":3}"#, RowAction::Retry).err(),
            Some("since")
        );
        assert_eq!(field("[]", RowAction::Retry).err(), Some("body"));
        let (filter, limit) = parse_bulk(
            br#"{"state":"failed","email":" Ada@Example.COM ","since":"1970-01-01T00:00:01Z"}"#,
            RowAction::Retry,
        )
        .expect("valid");
        assert_eq!(limit, BULK_DEFAULT);
        assert_eq!(filter.email.as_deref(), Some("ada@example.com"));
        assert_eq!(filter.since, Some(1000));
        assert_eq!(filter.state, Some(RowState::Failed));
    }
}
