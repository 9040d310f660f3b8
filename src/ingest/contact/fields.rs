//! Reading a contact event's JSON object field by field: each a trimmed, bounded value of one
//! type, every refusal naming its field, and anything left over an unknown field.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::domain::{LIST_MAX, NAME_MAX, has_control};
use crate::ingest::IngestError;

/// Largest member id accepted: 2^53 − 1, the largest integer Tallyfy's JavaScript clients (its
/// web app, n8n node) hold exactly, so no real Tallyfy id is above it.
pub(super) const MEMBER_ID_MAX: u64 = (1 << 53) - 1;

/// Takes fields out of the object one by one so that whatever is left over is unknown.
pub(super) struct Fields<'a>(pub(super) &'a mut Map<String, Value>);

impl Fields<'_> {
    /// A trimmed string of at most `max` characters and no control character; absent, null and
    /// "" all mean "not set".
    pub(super) fn text(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<Option<String>, IngestError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if has_control(s) {
                    return Err(IngestError::invalid(
                        field,
                        "control_character",
                        &format!(
                            "{field} must not contain control characters (U+0000–U+001F, U+007F–U+009F)"
                        ),
                    ));
                }
                if s.chars().count() > max {
                    return Err(IngestError::invalid(
                        field,
                        "too_long",
                        &format!("{field} must be at most {max} characters"),
                    ));
                }
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Some(other) => Err(wrong_type(field, "a string", &other)),
        }
    }

    pub(super) fn timezone(&mut self, field: &'static str) -> Result<Option<String>, IngestError> {
        let Some(tz) = self.text(field, NAME_MAX)? else {
            return Ok(None);
        };
        chrono_tz::Tz::from_str(&tz).map_err(|_| {
            IngestError::invalid(
                field,
                "invalid_timezone",
                &format!("{field} must be an IANA time zone name such as Europe/Paris"),
            )
        })?;
        Ok(Some(tz))
    }

    pub(super) fn member_ids(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<u64>>, IngestError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > LIST_MAX {
                    return Err(IngestError::invalid(
                        field,
                        "too_many",
                        &format!("{field} may hold at most {LIST_MAX} member ids"),
                    ));
                }
                let ids = items
                    .iter()
                    .map(|item| item.as_u64().filter(|id| (1..=MEMBER_ID_MAX).contains(id)))
                    .collect::<Option<Vec<u64>>>()
                    .ok_or_else(|| {
                        IngestError::invalid(
                            field,
                            "invalid_type",
                            &format!(
                                "{field} must be an array of member ids, integers from 1 to {MEMBER_ID_MAX}"
                            ),
                        )
                    })?;
                Ok((!ids.is_empty()).then_some(ids))
            }
            Some(other) => Err(wrong_type(field, "an array of member ids", &other)),
        }
    }

    pub(super) fn refuse_leftovers(self) -> Result<(), IngestError> {
        let Some(field) = self.0.keys().next() else {
            return Ok(());
        };
        let hint = if field == "phone" {
            " (Tallyfy has no `phone` field and would drop it silently: use phone_1)"
        } else {
            ""
        };
        Err(IngestError::invalid(
            field,
            "unknown_field",
            &format!("{field} is not a field of a contact event{hint}"),
        ))
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> IngestError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    IngestError::invalid(
        field,
        "invalid_type",
        &format!("{field} must be {expected}, not {got}"),
    )
}
