//! HubSpot app webhooks: a signed (v3) JSON array of events; each `contact.creation` is stored
//! as a reference to the contact, whose fields the delivery worker fetches before creating it,
//! and so is a `contact.propertyChange` of `email` for a contact refused for want of one.

mod signature;

use actix_web::HttpRequest;
use serde_json::Value;

use super::{Adapter, IngestError, Item, RecordIds, RowKey, json_body, refused};
use crate::configuration::HubSpotSettings;
use crate::crm::ContactRef;
use crate::domain::event::StoredEvent;
use crate::outbox::CrmRecord;
use signature::Signature;

pub const SOURCE: &str = "hubspot";

/// HubSpot sends at most 100 events per request.
const MAX_EVENTS: usize = 100;

pub struct HubSpot {
    signature: Signature,
}

impl HubSpot {
    pub fn from_settings(settings: &HubSpotSettings) -> Option<Self> {
        Some(Self {
            signature: Signature::from_settings(settings)?,
        })
    }
}

impl Adapter for HubSpot {
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError> {
        self.signature
            .verify(request, body, crate::time::now_ms())
            .map_err(|reason| refused(SOURCE, reason))?;
        let Value::Array(events) = json_body(request, body)? else {
            return Err(IngestError::MalformedJson {
                message: "body must be a JSON array of HubSpot events".into(),
            });
        };
        if events.len() > MAX_EVENTS {
            return Err(IngestError::invalid(
                "events",
                "too_many",
                &format!(
                    "{} events in one request; HubSpot sends at most {MAX_EVENTS}",
                    events.len()
                ),
            ));
        }
        Ok(events.iter().enumerate().map(|(i, e)| item(i, e)).collect())
    }
}

/// The events the bridge stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Creation,
    /// The contact's email was set or changed: worth a row only if the contact was refused.
    EmailChange,
}

/// What `event` is, or why it is ignored.
fn kind(event: &Value) -> Result<Kind, String> {
    let kind = event
        .get("subscriptionType")
        .or_else(|| event.get("eventType"))
        .and_then(Value::as_str)
        .unwrap_or("an event without subscriptionType");
    match kind {
        "contact.creation" => Ok(Kind::Creation),
        "contact.propertyChange" => {
            let property = event.get("propertyName").and_then(Value::as_str);
            let value = event.get("propertyValue").and_then(Value::as_str);
            match (property, value) {
                (Some("email"), Some(value)) if !value.trim().is_empty() => Ok(Kind::EmailChange),
                (Some("email"), _) => Err("the contact's email was removed".into()),
                (property, _) => Err(format!(
                    "a change of {} is not one of the email",
                    property.unwrap_or("an unnamed property")
                )),
            }
        }
        kind => Err(format!("{kind} is not a contact creation")),
    }
}

fn item(index: usize, event: &Value) -> Item {
    let kind = match kind(event) {
        Ok(kind) => kind,
        Err(reason) => return Item::Ignored { reason },
    };
    let id = |key: &str| match event.get(key) {
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    };
    let contact = match (id("portalId"), id("objectId")) {
        (Some(portal_id), Some(contact_id)) => ContactRef {
            portal_id,
            contact_id,
        },
        (portal, contact_id) => {
            let field = if portal.is_none() {
                "portalId"
            } else {
                "objectId"
            };
            // HubSpot's eventId is documented as not unique: with the ids the event does carry
            // it keys a resend of the batch, so its refusal is kept once.
            let event_id = id("eventId").map(|event| {
                let or_dash = |id: &Option<String>| id.clone().unwrap_or_else(|| "-".into());
                format!(
                    "{}:{}:event:{event}",
                    or_dash(&portal),
                    or_dash(&contact_id)
                )
            });
            return Item::rejected(
                event_id,
                &format!("[{index}].{field}"),
                "missing_field",
                &format!("{field} must be a numeric id"),
                RecordIds::new(contact_id.as_deref(), None),
            );
        }
    };
    let (event_id, record) = match kind {
        // eventId is documented as not unique; a contact is created once.
        Kind::Creation => (
            format!("{}:{}:created", contact.portal_id, contact.contact_id),
            CrmRecord::unseen(contact.contact_id.clone()),
        ),
        // One change at one moment; HubSpot's retries of it carry the same occurredAt.
        Kind::EmailChange => {
            let Some(at) = id("occurredAt") else {
                return Item::Ignored {
                    reason: "an email change without occurredAt".into(),
                };
            };
            (
                format!("{}:{}:email:{at}", contact.portal_id, contact.contact_id),
                CrmRecord::refused(contact.contact_id.clone()),
            )
        }
    };
    let key = RowKey::CrmRecord(contact.key());
    let record = Some(record);
    let stored = StoredEvent::HubspotContact {
        portal_id: contact.portal_id,
        contact_id: contact.contact_id,
    };
    Item::event(SOURCE, event_id, key, record, stored, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_event_is_stored_ignored_or_rejected_on_its_own() {
        let stored = item(
            0,
            &json!({"objectId": 5012, "portalId": 62515, "subscriptionType": "contact.creation"}),
        );
        let Item::Event { event, .. } = stored else {
            panic!("an event: {stored:?}")
        };
        assert_eq!(event.email, None);
        assert_eq!(event.crm_record.as_deref(), Some("hubspot:62515:5012"));
        assert_eq!(event.event_id.as_deref(), Some("62515:5012:created"));
        assert!(matches!(
            item(
                1,
                &json!({"objectId": 1, "portalId": 2, "subscriptionType": "contact.deletion"})
            ),
            Item::Ignored { .. }
        ));
        assert!(matches!(
            item(2, &json!({"portalId": 2, "subscriptionType": "contact.creation"})),
            Item::Rejected { field, .. } if field == "[2].objectId"
        ));
        assert!(matches!(
            item(3, &json!({"objectId": "5013", "subscriptionType": "contact.creation"})),
            Item::Rejected { field, record, event_id: None, .. }
                if field == "[3].portalId" && record.record_id.as_deref() == Some("5013")
        ));
        assert!(matches!(
            item(4, &json!({"objectId": 7, "eventId": 99, "subscriptionType": "contact.creation"})),
            Item::Rejected { event_id: Some(id), .. } if id == "-:7:event:99"
        ));
    }

    fn change(property: &str, value: Value) -> Value {
        json!({"eventId": 77, "subscriptionId": 2400002, "portalId": 62515, "appId": 54321,
               "occurredAt": 1767225700000u64, "subscriptionType": "contact.propertyChange",
               "attemptNumber": 0, "objectId": 5012, "propertyName": property,
               "propertyValue": value, "changeSource": "CRM_UI", "sourceId": "userId:777"})
    }

    #[test]
    fn an_email_change_is_stored_for_a_refused_contact_only() {
        let stored = item(0, &change("email", json!("late@example.com")));
        let Item::Event { event, .. } = stored else {
            panic!("an event: {stored:?}")
        };
        assert_eq!(event.record, Some(CrmRecord::refused("5012")));
        assert_eq!(event.crm_record.as_deref(), Some("hubspot:62515:5012"));
        assert_eq!(
            event.event_id.as_deref(),
            Some("62515:5012:email:1767225700000")
        );
        // The worker reads the contact, as for a creation.
        assert_eq!(
            StoredEvent::decode(&event.payload),
            Ok(StoredEvent::HubspotContact {
                portal_id: "62515".into(),
                contact_id: "5012".into()
            })
        );
        let creation = item(
            1,
            &json!({"objectId": 5012, "portalId": 62515, "subscriptionType": "contact.creation"}),
        );
        let Item::Event { event, .. } = creation else {
            panic!("an event: {creation:?}")
        };
        assert_eq!(event.record, Some(CrmRecord::unseen("5012")));
    }

    #[test]
    fn other_property_changes_and_a_removed_email_are_ignored() {
        for event in [
            change("lastname", json!("Lovelace")),
            change("email", json!("")),
            change("email", json!(null)),
        ] {
            assert!(matches!(item(0, &event), Item::Ignored { .. }), "{event}");
        }
        let mut undated = change("email", json!("late@example.com"));
        undated
            .as_object_mut()
            .expect("object")
            .remove("occurredAt");
        assert!(matches!(item(0, &undated), Item::Ignored { .. }));
    }
}
