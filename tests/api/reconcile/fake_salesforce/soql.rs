//! The fake's reading of the one SOQL shape the bridge sends: its columns and its `CreatedDate`
//! bounds, and a record projected onto the columns the way the REST API answers.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::created;

/// The one query shape the bridge sends, read back: its columns and its `CreatedDate` bounds.
pub(super) struct Soql {
    fields: Vec<String>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Soql {
    pub(super) fn parse(q: &str) -> Option<Self> {
        let rest = q.strip_prefix("SELECT ")?;
        let (fields, rest) = rest.split_once(" FROM Contact WHERE CreatedDate >= ")?;
        let (since, rest) = rest.split_once(" AND CreatedDate < ")?;
        let until = rest.strip_suffix(" ORDER BY CreatedDate")?;
        // SOQL dateTime literals: unquoted, to the second, with Z or an offset.
        let literal = |text: &str| {
            (!text.contains('\'') && !text.contains('.'))
                .then(|| DateTime::parse_from_rfc3339(text).ok())
                .flatten()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Self {
            fields: fields.split(", ").map(str::to_owned).collect(),
            since: literal(since)?,
            until: literal(until)?,
        })
    }

    pub(super) fn includes(&self, record: &Map<String, Value>) -> bool {
        let at = created(record);
        self.since <= at && at < self.until
    }

    /// The selected columns only, relationships as nested objects (null without one).
    pub(super) fn project(&self, record: &Map<String, Value>) -> Value {
        let id = record.get("Id").cloned().unwrap_or(Value::Null);
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            json!({"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{}", id.as_str().unwrap_or_default())}),
        );
        for field in &self.fields {
            match field.split_once('.') {
                Some((relation, name)) => {
                    let value = match record.get(relation) {
                        Some(Value::Object(related)) => json!({
                            "attributes": {"type": relation},
                            name: related.get(name).cloned().unwrap_or(Value::Null),
                        }),
                        _ => Value::Null,
                    };
                    out.insert(relation.to_owned(), value);
                }
                None => {
                    out.insert(
                        field.clone(),
                        record.get(field).cloned().unwrap_or(Value::Null),
                    );
                }
            }
        }
        Value::Object(out)
    }
}
