//! HubSpot app webhooks: a signed (v3) JSON array of events; each `contact.creation` is stored
//! as a reference to the contact, whose fields the delivery worker fetches before creating it.

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

fn item(index: usize, event: &Value) -> Item {
    let kind = event
        .get("subscriptionType")
        .or_else(|| event.get("eventType"))
        .and_then(Value::as_str)
        .unwrap_or("an event without subscriptionType");
    if kind != "contact.creation" {
        return Item::Ignored {
            reason: format!("{kind} is not a contact creation"),
        };
    }
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
    // eventId is documented as not unique; a contact is created once.
    let event_id = format!("{}:{}:created", contact.portal_id, contact.contact_id);
    let key = RowKey::CrmRecord(contact.key());
    let record = Some(CrmRecord::unseen(contact.contact_id.clone()));
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
                &json!({"objectId": 1, "portalId": 2, "subscriptionType": "contact.propertyChange"})
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
}
