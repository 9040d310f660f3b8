//! The canonical contact-created event: parsed from JSON field by field so every rejection names
//! the field, and checked against Tallyfy's own limits before anything is stored.

use std::str::FromStr;

use serde_json::{Map, Value};

use super::error::IngestError;
use crate::domain::{
    EMAIL_MAX, Guest, LIST_MAX, NAME_MAX, NormalisedEmail, PHONE_MAX, has_control,
};
/// Not documented by Tallyfy; a sanity bound for URLs and other free text.
const TEXT_MAX: usize = 2000;
/// Largest member id accepted: 2^53 − 1, the largest integer Tallyfy's JavaScript clients (its
/// web app, n8n node) hold exactly, so no real Tallyfy id is above it.
const MEMBER_ID_MAX: u64 = (1 << 53) - 1;
/// Longest accepted CRM event id.
pub const EVENT_ID_MAX: usize = 255;

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub event_id: Option<String>,
    pub normalised_email: NormalisedEmail,
    /// The guest fields, stored with the email as the CRM wrote it (trimmed) for operators;
    /// delivery sends `normalised_email` instead, the identity it also looks guests up by.
    pub guest: Guest,
}

/// Parses and validates the body of `POST /webhooks/contacts`.
pub fn parse(body: &[u8]) -> Result<Contact, IngestError> {
    let value = super::json::parse(body)?;
    let Value::Object(mut fields) = value else {
        return Err(IngestError::MalformedJson {
            message: "body must be a JSON object".into(),
        });
    };
    let mut reader = Fields(&mut fields);
    let event_id = reader.text("event_id", EVENT_ID_MAX)?;
    let email = reader
        .text("email", EMAIL_MAX)?
        .ok_or_else(|| IngestError::invalid("email", "missing_field", "email is required"))?;
    let normalised_email = NormalisedEmail::parse(&email)
        .map_err(|why| IngestError::invalid("email", "invalid_email", &why))?;
    let guest = Guest {
        first_name: reader.text("first_name", NAME_MAX)?,
        last_name: reader.text("last_name", NAME_MAX)?,
        company_name: reader.text("company_name", NAME_MAX)?,
        phone_1: reader.text("phone_1", PHONE_MAX)?,
        phone_2: reader.text("phone_2", PHONE_MAX)?,
        timezone: reader.timezone("timezone")?,
        associated_members: reader.member_ids("associated_members")?,
        company_url: reader.text("company_url", TEXT_MAX)?,
        contact_url: reader.text("contact_url", TEXT_MAX)?,
        image_url: reader.text("image_url", TEXT_MAX)?,
        opportunity_name: reader.text("opportunity_name", NAME_MAX)?,
        opportunity_url: reader.text("opportunity_url", TEXT_MAX)?,
        email,
    };
    reader.refuse_leftovers()?;
    Ok(Contact {
        event_id,
        normalised_email,
        guest,
    })
}

/// Takes fields out of the object one by one so that whatever is left over is unknown.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    /// A trimmed string of at most `max` characters and no control character; absent, null and
    /// "" all mean "not set".
    fn text(&mut self, field: &'static str, max: usize) -> Result<Option<String>, IngestError> {
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

    fn timezone(&mut self, field: &'static str) -> Result<Option<String>, IngestError> {
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

    fn member_ids(&mut self, field: &'static str) -> Result<Option<Vec<u64>>, IngestError> {
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

    fn refuse_leftovers(self) -> Result<(), IngestError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(IngestError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_full_contact_parses_and_keeps_the_email_as_sent() {
        let contact = parse(
            br#"{"event_id":"evt_1","email":"  Ada@Example.COM ","first_name":"Ada",
                 "last_name":null,"phone_1":"+44 20 7946 0000","timezone":"Europe/London",
                 "associated_members":[12,34]}"#,
        )
        .expect("valid");
        assert_eq!(contact.event_id.as_deref(), Some("evt_1"));
        assert_eq!(contact.normalised_email.as_str(), "ada@example.com");
        assert_eq!(contact.guest.email, "Ada@Example.COM");
        assert_eq!(contact.guest.last_name, None);
        assert_eq!(contact.guest.associated_members, Some(vec![12, 34]));
    }

    #[test]
    fn stored_payload_carries_only_set_fields() {
        let contact = parse(br#"{"email":"a@example.com","first_name":""}"#).expect("valid");
        let json = serde_json::to_string(&contact.guest).expect("serialise");
        assert_eq!(json, r#"{"email":"a@example.com"}"#);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(r#"{}"#), "email");
        assert_eq!(field_of(r#"{"email":"not-an-email"}"#), "email");
        assert_eq!(field_of(r#"{"email":"a@localhost"}"#), "email");
        assert_eq!(field_of(r#"{"email":42}"#), "email");
        let long = "x".repeat(201);
        assert_eq!(
            field_of(&format!(
                r#"{{"email":"a@example.com","first_name":"{long}"}}"#
            )),
            "first_name"
        );
        assert_eq!(
            field_of(r#"{"email":"a@example.com","phone_1":"012345678901234567890"}"#),
            "phone_1"
        );
        assert_eq!(
            field_of(r#"{"email":"a@example.com","timezone":"Mars/Olympus"}"#),
            "timezone"
        );
        assert_eq!(
            field_of(r#"{"email":"a@example.com","associated_members":[1,"2"]}"#),
            "associated_members"
        );
        assert_eq!(
            field_of(r#"{"email":"a@example.com","phone":"1"}"#),
            "phone"
        );
        let long_id = "e".repeat(EVENT_ID_MAX + 1);
        assert_eq!(
            field_of(&format!(
                r#"{{"email":"a@example.com","event_id":"{long_id}"}}"#
            )),
            "event_id"
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let name = "é".repeat(200);
        let body = format!(r#"{{"email":"a@example.com","first_name":"{name}"}}"#);
        assert!(parse(body.as_bytes()).is_ok());
    }

    #[test]
    fn malformed_json_and_non_objects_are_not_field_errors() {
        for body in ["{", "[]", "\"a@example.com\""] {
            assert!(
                matches!(
                    parse(body.as_bytes()),
                    Err(IngestError::MalformedJson { .. })
                ),
                "{body}"
            );
        }
    }

    fn code_of(body: &str) -> (String, &'static str) {
        match parse(body.as_bytes()) {
            Err(IngestError::Invalid { field, code, .. }) => (field, code),
            other => panic!("{body}: expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn member_ids_are_bounded_in_number_and_range() {
        let ids = |n: usize| {
            format!(
                r#"{{"email":"a@example.com","associated_members":[{}]}}"#,
                vec!["7"; n].join(",")
            )
        };
        assert!(parse(ids(LIST_MAX).as_bytes()).is_ok());
        assert_eq!(
            code_of(&ids(LIST_MAX + 1)),
            ("associated_members".into(), "too_many")
        );
        for id in ["0", "-1", "9007199254740992", "1.5"] {
            let body = format!(r#"{{"email":"a@example.com","associated_members":[{id}]}}"#);
            assert_eq!(
                code_of(&body),
                ("associated_members".into(), "invalid_type"),
                "{id}"
            );
        }
    }

    #[test]
    fn repeated_keys_and_control_characters_are_refused() {
        assert_eq!(
            code_of(r#"{"email":"a@x.com","email":"b@x.com"}"#),
            ("email".into(), "duplicate_key")
        );
        for control in ["\\u0000", "\\u001b", "\\n", "\\u007f", "\\u0085"] {
            let body = format!(r#"{{"email":"a@example.com","first_name":"A{control}da"}}"#);
            assert_eq!(
                code_of(&body),
                ("first_name".into(), "control_character"),
                "{control}"
            );
        }
    }
}
