//! A Pipedrive webhook body as one item: a person creation (v1 `added.person`, v2
//! `create.person`) becomes a guest, or a guest waiting for its organisation's name.

use serde_json::{Map, Value};

use super::SOURCE;
use super::values::{id_of, primary, string, text};
use crate::domain::event::StoredEvent;
use crate::domain::{ContactDraft, LIST_MAX};
use crate::ingest::IngestError;
use crate::ingest::sources::{Item, RecordIds, RowKey};
use crate::outbox::CrmRecord;

/// The webhook's one item: a person creation, or anything else (ignored).
/// `reads_orgs`: a person whose organisation is named only by id waits for the worker to read
/// the name (else the guest gets no company).
pub(super) fn person_event(
    body: &Map<String, Value>,
    reads_orgs: bool,
) -> Result<Item, IngestError> {
    let meta = match body.get("meta") {
        Some(Value::Object(meta)) => meta,
        _ => {
            return Err(IngestError::invalid(
                "meta",
                "missing_field",
                "meta is required: this is not a Pipedrive webhook",
            ));
        }
    };
    // v2 names the action and entity in meta; v1 has `event` ("added.person") and meta.object.
    let v2 = meta.contains_key("entity") || body.contains_key("data");
    let (event, person_key, emails, phones) = if v2 {
        let event = format!("{}.{}", text(meta, "action"), text(meta, "entity"));
        (event, "data", "emails", "phones")
    } else {
        let event = match body.get("event").and_then(Value::as_str) {
            Some(event) => event.to_owned(),
            None => format!("{}.{}", text(meta, "action"), text(meta, "object")),
        };
        (event, "current", "email", "phone")
    };
    if event != "create.person" && event != "added.person" {
        return Ok(Item::Ignored {
            reason: format!("{event} is not a person creation"),
        });
    }
    let Some(Value::Object(person)) = body.get(person_key) else {
        return Err(IngestError::invalid(
            person_key,
            "missing_field",
            &format!("{person_key} must hold the created person"),
        ));
    };
    let company_id = id_of(meta.get("company_id")).ok_or_else(|| {
        IngestError::invalid(
            "meta.company_id",
            "missing_field",
            "meta.company_id is required",
        )
    })?;
    // v1's meta.id is the person's id; v2's meta.id is the event's, with the person in entity_id.
    let person_id = id_of(meta.get(if v2 { "entity_id" } else { "id" }))
        .or_else(|| id_of(person.get("id")))
        .ok_or_else(|| {
            IngestError::invalid(
                &format!("{person_key}.id"),
                "missing_field",
                "the person's id is required",
            )
        })?;
    let record = RecordIds::record(&person_id);
    // One key per created person: a retry, and a v1 and a v2 webhook both configured, store one.
    let event_id = format!("{company_id}:person:{person_id}:created");
    for list in [emails, phones] {
        let len = person
            .get(list)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if len > LIST_MAX {
            return Ok(Item::rejected(
                Some(event_id),
                &format!("{person_key}.{list}"),
                "too_many",
                &format!("{list} has {len} entries; a person may have at most {LIST_MAX}"),
                record,
            ));
        }
    }
    let draft = ContactDraft {
        email: primary(person.get(emails)),
        first_name: string(person.get("first_name")),
        last_name: string(person.get("last_name")),
        phone: primary(person.get(phones)),
        company: string(person.get("org_name")).or_else(|| {
            // The API's form of org_id is an object with the name; webhooks send a bare id.
            person.get("org_id").and_then(|org| string(org.get("name")))
        }),
    };
    let email_field = format!("{person_key}.{emails}");
    let org_id = id_of(person.get("org_id")).filter(|_| reads_orgs && draft.company.is_none());
    Ok(match (org_id, draft.into_guest()) {
        (Some(org_id), Ok(drafted)) => Item::event(
            SOURCE,
            event_id,
            RowKey::Email(drafted.normalised_email.into()),
            record.record_id.clone().map(CrmRecord::unseen),
            StoredEvent::PipedrivePerson {
                org_id,
                guest: drafted.guest,
            },
            drafted.dropped.iter().map(|p| p.field).collect(),
        ),
        (_, drafted) => Item::contact(SOURCE, event_id, drafted, &email_field, record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(body: Value) -> Item {
        let Value::Object(body) = body else {
            panic!("object")
        };
        person_event(&body, false).expect("a Pipedrive envelope")
    }

    fn v1_person(current: Value) -> Value {
        json!({"v": 1, "event": "added.person", "retry": 0, "previous": null,
               "meta": {"v": 1, "action": "added", "object": "person", "id": 4711,
                        "company_id": 7654321, "user_id": 1},
               "current": current})
    }

    #[test]
    fn v1_takes_the_primary_email_and_phone_and_the_organisation_name() {
        let Item::Event { event, .. } = item(v1_person(json!({
            "id": 4711, "first_name": "Grace", "last_name": "Hopper",
            "email": [{"label": "home", "value": "grace@example.org", "primary": false},
                      {"label": "work", "value": "G.Hopper@example.com", "primary": true}],
            "phone": [{"value": "+1 415 555 0100", "primary": "true"}],
            "org_id": 42, "org_name": "Navy Labs"})))
        else {
            panic!("an event")
        };
        assert_eq!(event.email.as_deref(), Some("g.hopper@example.com"));
        assert_eq!(
            event.event_id.as_deref(),
            Some("7654321:person:4711:created")
        );
        let payload: Value = serde_json::from_str(&event.payload).expect("json");
        let payload = &payload["guest"];
        assert_eq!(
            *payload,
            json!({"email": "G.Hopper@example.com", "first_name": "Grace", "last_name": "Hopper",
                   "phone_1": "+1 415 555 0100", "company_name": "Navy Labs"})
        );
    }

    #[test]
    fn v2_uses_the_entity_id_and_the_same_key_as_v1() {
        let body = json!({
            "meta": {"action": "create", "entity": "person", "company_id": "7654321",
                     "entity_id": "4711", "id": "9e2c4d1a-5b7f-4c3e-8a6d-1f0e2b3c4d5e",
                     "version": "2.0", "attempt": 1},
            "data": {"id": 4711, "first_name": "Grace", "last_name": null,
                     "emails": [{"value": "grace@example.com", "primary": true}],
                     "phones": [], "org_id": {"value": 42, "name": "Navy Labs"}},
            "previous": null});
        let Item::Event { event, .. } = item(body) else {
            panic!("an event")
        };
        assert_eq!(
            event.event_id.as_deref(),
            Some("7654321:person:4711:created")
        );
        let payload: Value = serde_json::from_str(&event.payload).expect("json");
        let payload = &payload["guest"];
        assert_eq!(
            *payload,
            json!({"email": "grace@example.com", "first_name": "Grace", "company_name": "Navy Labs"})
        );
    }

    #[test]
    fn with_an_api_token_a_person_named_only_by_org_id_waits_for_the_name() {
        let body = json!({
            "meta": {"action": "create", "entity": "person", "company_id": "1",
                     "entity_id": "7"},
            "data": {"id": 7, "first_name": "Grace",
                     "emails": [{"value": "Grace@example.com", "primary": true}],
                     "org_id": 42}});
        let Value::Object(body) = body else {
            panic!("object")
        };
        let Ok(Item::Event { event, .. }) = person_event(&body, true) else {
            panic!("an event")
        };
        assert_eq!(event.email.as_deref(), Some("grace@example.com"));
        let stored = StoredEvent::decode(&event.payload).expect("a stored event");
        let StoredEvent::PipedrivePerson { org_id, guest } = stored else {
            panic!("a Pipedrive organisation to read: {}", event.payload)
        };
        assert_eq!(org_id, "42");
        assert_eq!(guest.first_name.as_deref(), Some("Grace"));
        // Without a token the same person is an ordinary guest with no company.
        let Ok(Item::Event { event, .. }) = person_event(&body, false) else {
            panic!("an event")
        };
        assert!(matches!(
            StoredEvent::decode(&event.payload),
            Ok(StoredEvent::Guest { .. })
        ));
    }

    #[test]
    fn without_a_primary_flag_the_first_email_is_taken() {
        let Item::Event { event, .. } = item(v1_person(json!({
            "id": 1, "email": [{"value": ""}, {"value": "a@example.com"}, {"value": "b@example.com"}]
        }))) else {
            panic!("an event")
        };
        assert_eq!(event.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn a_person_without_an_email_is_rejected_naming_the_field() {
        let rejected = item(v1_person(json!({"id": 1, "name": "No Mail", "email": []})));
        assert!(
            matches!(&rejected, Item::Rejected { field, code: "missing_field", .. } if field == "current.email"),
            "{rejected:?}"
        );
    }

    #[test]
    fn a_refused_person_carries_its_pipedrive_id_and_lists_are_bounded() {
        let rejected = item(v1_person(
            json!({"id": 4711, "email": "Name <a@example.com>"}),
        ));
        assert!(
            matches!(&rejected, Item::Rejected { code: "invalid_email", record, .. }
                if record.record_id.as_deref() == Some("4711")),
            "{rejected:?}"
        );
        let many = |n: usize| vec![json!({"value": "a@example.com"}); n];
        let Item::Event { .. } = item(v1_person(json!({"id": 1, "email": many(LIST_MAX)}))) else {
            panic!("{LIST_MAX} emails are fine")
        };
        for list in ["email", "phone"] {
            let mut person = json!({"id": 1, "email": [{"value": "a@example.com"}]});
            person[list] = json!(many(LIST_MAX + 1));
            assert!(
                matches!(item(v1_person(person)), Item::Rejected { field, code: "too_many", .. }
                    if field == format!("current.{list}")),
                "{list}"
            );
        }
    }

    #[test]
    fn other_events_are_ignored() {
        for body in [
            json!({"event": "updated.person", "meta": {"action": "updated", "object": "person"}}),
            json!({"event": "added.deal", "meta": {"action": "added", "object": "deal"}}),
            json!({"meta": {"action": "change", "entity": "person"}, "data": {}}),
            json!({"meta": {"action": "create", "entity": "organization"}, "data": {}}),
        ] {
            assert!(matches!(item(body), Item::Ignored { .. }));
        }
    }

    #[test]
    fn a_body_without_meta_is_refused() {
        let Value::Object(body) = json!({"current": {}}) else {
            panic!("object")
        };
        assert!(matches!(
            person_event(&body, false),
            Err(IngestError::Invalid { field, .. }) if field == "meta"
        ));
    }
}
