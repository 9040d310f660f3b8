//! The canonical contact-created event: parsed from JSON field by field so every rejection names
//! the field, and checked against Tallyfy's own limits before anything is stored.

mod fields;

use serde_json::Value;

use super::error::IngestError;
use crate::domain::{EMAIL_MAX, Guest, NAME_MAX, NormalisedEmail, PHONE_MAX};
use fields::Fields;

/// Not documented by Tallyfy; a sanity bound for URLs and other free text.
const TEXT_MAX: usize = 2000;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LIST_MAX;

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
