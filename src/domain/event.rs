//! The event an outbox row stores, in the bridge's own format: tagged by kind and versioned, so
//! what is on disk never depends on a vendor's wire types or on guessing a payload's shape.

use serde::{Deserialize, Serialize};

use super::Guest;

/// The stored format this release writes and reads. A row of another version is refused by
/// [`StoredEvent::decode`], never guessed at.
pub const STORED_VERSION: u32 = 1;

/// What a row asks the worker to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredEvent {
    /// Create this guest.
    Guest { guest: Guest },
    /// A HubSpot contact known only by id: its email and fields are read from HubSpot first.
    HubspotContact {
        portal_id: String,
        contact_id: String,
    },
    /// A Pipedrive person whose organisation is known only by id: its name is read for the
    /// guest's company first.
    PipedrivePerson { org_id: String, guest: Guest },
}

#[derive(Serialize)]
struct Writing<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a StoredEvent,
}

impl StoredEvent {
    /// The row's `payload` text.
    pub fn encode(&self) -> String {
        let writing = Writing {
            v: STORED_VERSION,
            event: self,
        };
        // Strings, numbers and lists only: serialising cannot fail.
        serde_json::to_string(&writing).unwrap_or_default()
    }

    /// Reads a row's `payload`; the reason when it is not a stored event of this version.
    pub fn decode(payload: &str) -> Result<Self, String> {
        let unreadable = |error: serde_json::Error| format!("stored event is unreadable: {error}");
        let mut value: serde_json::Value = serde_json::from_str(payload).map_err(unreadable)?;
        let version = value.as_object_mut().and_then(|object| object.remove("v"));
        match version.as_ref().and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(STORED_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "stored event version {v} is not {STORED_VERSION}, the one this release reads"
                ));
            }
            None => return Err("stored event has no version".into()),
        }
        serde_json::from_value(value).map_err(unreadable)
    }

    /// The CRM that must be read before the guest can be created, if any.
    pub fn crm(&self) -> Option<&'static str> {
        match self {
            Self::Guest { .. } => None,
            Self::HubspotContact { .. } => Some("HubSpot"),
            Self::PipedrivePerson { .. } => Some("Pipedrive"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_format_is_tagged_and_versioned() {
        let event = StoredEvent::PipedrivePerson {
            org_id: "77".into(),
            guest: Guest::new("ada@example.com"),
        };
        let text = event.encode();
        assert_eq!(
            text,
            r#"{"v":1,"kind":"pipedrive_person","org_id":"77","guest":{"email":"ada@example.com"}}"#
        );
        assert_eq!(StoredEvent::decode(&text), Ok(event));
    }

    #[test]
    fn another_version_or_an_untagged_payload_is_refused() {
        let newer = r#"{"v":2,"kind":"guest","guest":{"email":"a@example.com"}}"#;
        assert!(StoredEvent::decode(newer).is_err_and(|e| e.contains("version 2")));
        // What releases before the versioned format stored (converted by a migration).
        assert!(StoredEvent::decode(r#"{"email":"a@example.com"}"#).is_err());
        let unknown = r#"{"v":1,"kind":"salesforce_lead","id":"1"}"#;
        assert!(StoredEvent::decode(unknown).is_err());
    }
}
