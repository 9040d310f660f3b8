//! Request and response types of the guest API, parsed leniently because Tallyfy's
//! documented shapes disagree (numeric vs. text ids).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Guest;

/// Body of `POST /organizations/{org}/guests`. Only set fields are sent.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestRequest {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associated_members: Option<Vec<u64>>,
}

impl GuestRequest {
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            ..Self::default()
        }
    }
}

/// Tallyfy's request for the bridge's guest: today field for field (a test checks none is lost).
impl From<&Guest> for GuestRequest {
    fn from(guest: &Guest) -> Self {
        Self {
            email: guest.email.clone(),
            first_name: guest.first_name.clone(),
            last_name: guest.last_name.clone(),
            company_name: guest.company_name.clone(),
            phone_1: guest.phone_1.clone(),
            phone_2: guest.phone_2.clone(),
            timezone: guest.timezone.clone(),
            company_url: guest.company_url.clone(),
            contact_url: guest.contact_url.clone(),
            image_url: guest.image_url.clone(),
            opportunity_name: guest.opportunity_name.clone(),
            opportunity_url: guest.opportunity_url.clone(),
            associated_members: guest.associated_members.clone(),
        }
    }
}

/// Tallyfy's guest id, kept as text: current docs show numbers, older docs strings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct GuestId(String);

impl GuestId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Reads `data.id` (or a bare top-level `id`) as a number or a non-empty string.
    pub(crate) fn from_body(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let id = value
            .get("data")
            .and_then(|data| data.get("id"))
            .or_else(|| value.get("id"))?;
        match id {
            Value::Number(n) => Some(Self(n.to_string())),
            Value::String(s) if !s.trim().is_empty() => Some(Self(s.trim().to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for GuestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_read_as_number_or_string() {
        let numeric = GuestId::from_body(br#"{"data":{"id":4523}}"#);
        assert_eq!(numeric, Some(GuestId::new("4523")));
        let text = GuestId::from_body(br#"{"data":{"id":"new_guest_code_789"}}"#);
        assert_eq!(text, Some(GuestId::new("new_guest_code_789")));
    }

    #[test]
    fn missing_or_empty_id_is_none() {
        assert_eq!(GuestId::from_body(br#"{"data":{}}"#), None);
        assert_eq!(GuestId::from_body(br#"{"data":{"id":""}}"#), None);
        assert_eq!(GuestId::from_body(br#"{"data":{"id":null}}"#), None);
        assert_eq!(GuestId::from_body(b"<html>ok</html>"), None);
    }

    #[test]
    fn the_request_carries_every_field_of_the_guest() {
        let guest = Guest {
            email: "a@example.com".into(),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            company_name: Some("Engines".into()),
            phone_1: Some("1".into()),
            phone_2: Some("2".into()),
            timezone: Some("Europe/London".into()),
            company_url: Some("https://c.example".into()),
            contact_url: Some("https://k.example".into()),
            image_url: Some("https://i.example".into()),
            opportunity_name: Some("Deal".into()),
            opportunity_url: Some("https://o.example".into()),
            associated_members: Some(vec![7]),
        };
        assert_eq!(
            serde_json::to_value(GuestRequest::from(&guest)).expect("json"),
            serde_json::to_value(&guest).expect("json")
        );
    }

    #[test]
    fn only_set_fields_are_serialized() {
        let mut guest = GuestRequest::new("a@example.com");
        guest.first_name = Some("Ada".into());
        let json = serde_json::to_value(&guest).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"email": "a@example.com", "first_name": "Ada"})
        );
    }
}
