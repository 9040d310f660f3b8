//! The guest to create, in the bridge's own words, and Tallyfy's limits on its fields: what
//! ingest validates against, what the worker sends (the client maps it to its wire type).

use serde::{Deserialize, Serialize};

/// Tallyfy's documented limits, in characters.
pub const NAME_MAX: usize = 200;
pub const PHONE_MAX: usize = 20;
/// Longest list a contact may carry (member ids, a CRM person's emails or phones): a guest is
/// associated with a few members and a person has a few addresses, so anything near 100 is not
/// a real contact, and the bound keeps the work and the stored row per contact small.
pub const LIST_MAX: usize = 100;

/// Whether `text` holds a C0 control (U+0000–U+001F, tab and newline included), DEL or a C1
/// control (U+0080–U+009F): none belongs in a name, phone or URL, and a NUL or an escape sent
/// on to Tallyfy (or a log) is never what the CRM's user typed.
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// A guest to create. Only set fields are serialised; this JSON is what an outbox row stores
/// today, so its field names and order are the stored format (see the test below).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Guest {
    /// As the CRM wrote it (trimmed), for operators; the row's key is its normalised form, and
    /// that is what delivery sends.
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

impl Guest {
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest row as the current release stores it, every field set.
    const STORED: &str = r#"{"email":"Ada@Example.com","first_name":"Ada","last_name":"Lovelace","company_name":"Analytical Engines","phone_1":"+44 20 7946 0000","phone_2":"+44 20 7946 0001","timezone":"Europe/London","company_url":"https://engines.example","contact_url":"https://crm.example/1","image_url":"https://img.example/1.png","opportunity_name":"Engine","opportunity_url":"https://crm.example/o/1","associated_members":[12,34]}"#;

    #[test]
    fn a_stored_guest_reads_back_and_writes_byte_for_byte_the_same() {
        let guest: Guest = serde_json::from_str(STORED).expect("a stored guest");
        assert_eq!(guest.associated_members, Some(vec![12, 34]));
        assert_eq!(serde_json::to_string(&guest).expect("json"), STORED);
        let minimal = r#"{"email":"a@example.com"}"#;
        let guest: Guest = serde_json::from_str(minimal).expect("a stored guest");
        assert_eq!(guest, Guest::new("a@example.com"));
        assert_eq!(serde_json::to_string(&guest).expect("json"), minimal);
    }
}
