//! Email later: a person refused for want of a usable email becomes a guest when an update
//! (v1 `updated.person`, v2 `change.person`) brings one. The writer queues it only if the
//! person has an open refusal; any other update stays ignored.

use serde_json::{Map, Value};

use super::SOURCE;
use super::person::{Envelope, Reading};
use crate::crm::pipedrive::person::Person;
use crate::ingest::sources::{Item, RowKey};
use crate::outbox::CrmRecord;

/// The update's item: the person's guest, to queue if it was refused (`CrmRecord::refused`), or
/// ignored when the update names no person or carries no usable email. Never a refusal: an
/// update of a person without email says nothing the creation did not.
pub(super) fn updated(
    body: &Map<String, Value>,
    envelope: &Envelope<'_>,
    reading: Reading<'_>,
) -> Item {
    let ignored = |why: &str| Item::Ignored {
        reason: format!("{} {why}", envelope.event),
    };
    let Some(person) = envelope.person(body) else {
        return ignored("names no person");
    };
    let (Some(company_id), Some(person_id)) = (envelope.company_id(), envelope.person_id(person))
    else {
        return ignored("names no person id or company id");
    };
    let Ok(Person { draft, extras }) = Person::read(person, envelope.lists) else {
        return ignored("lists more emails or phones than a person has");
    };
    let Ok(drafted) = draft.into_guest() else {
        return ignored("carries no usable email");
    };
    // One key per person: the v1 and v2 twins of an update, and Pipedrive's retries, store one
    // row, and once the refusal is resolved the writer answers every later update NotNeeded.
    let event_id = format!("{company_id}:person:{person_id}:email-later");
    Item::event(
        SOURCE,
        event_id,
        RowKey::Email(drafted.normalised_email.into()),
        Some(CrmRecord::refused(person_id)),
        extras.event(drafted.guest, reading.reads_orgs, reading.owners),
        drafted.dropped.iter().map(|p| p.field).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::person::person_event;
    use super::*;
    use crate::configuration::OwnerMembers;
    use crate::domain::event::StoredEvent;
    use crate::outbox::OnlyIf;
    use serde_json::json;

    fn item(body: Value, owners: &OwnerMembers) -> Item {
        let Value::Object(body) = body else {
            panic!("object")
        };
        let reading = Reading {
            reads_orgs: true,
            owners,
        };
        person_event(&body, reading).expect("a Pipedrive envelope")
    }

    fn v1_updated(current: Value) -> Value {
        json!({"v": 1, "event": "updated.person", "retry": 0,
               "meta": {"v": 1, "action": "updated", "object": "person", "id": 4711,
                        "company_id": 7654321, "user_id": 1},
               "current": current, "previous": {"email": [{"value": "", "primary": true}]}})
    }

    fn v2_change(data: Value) -> Value {
        json!({"meta": {"action": "change", "entity": "person", "company_id": "7654321",
                        "entity_id": "4711", "id": "5f0c2b8e-1d3a-4e6f-9b7c-0a1d2e3f4a5b",
                        "version": "2.0"},
               "data": data, "previous": {"emails": []}})
    }

    #[test]
    fn an_update_with_an_email_is_the_guest_of_a_refused_person_in_both_versions() {
        let owners = OwnerMembers::from([("12", 678)]);
        for body in [
            v1_updated(json!({"id": 4711, "first_name": "Grace", "owner_id": 12,
                              "org_name": "Navy Labs",
                              "email": [{"value": "Grace@example.com", "primary": true}]})),
            v2_change(json!({"id": 4711, "first_name": "Grace", "owner_id": 12,
                             "org_id": {"value": 42, "name": "Navy Labs"},
                             "emails": [{"value": "Grace@example.com", "primary": true}]})),
        ] {
            let Item::Event { event, .. } = item(body, &owners) else {
                panic!("an event")
            };
            assert_eq!(event.email.as_deref(), Some("grace@example.com"));
            assert_eq!(
                event.event_id.as_deref(),
                Some("7654321:person:4711:email-later")
            );
            let record = event.record.expect("the person's record");
            assert_eq!(
                (record.id.as_str(), record.only_if),
                ("4711", OnlyIf::Refused)
            );
            let Ok(StoredEvent::Guest { guest }) = StoredEvent::decode(&event.payload) else {
                panic!("a guest: {}", event.payload)
            };
            assert_eq!(guest.company_name.as_deref(), Some("Navy Labs"));
            assert_eq!(guest.associated_members, Some(vec![678]));
        }
    }

    #[test]
    fn an_update_without_a_usable_email_is_ignored_not_refused() {
        let owners = OwnerMembers::default();
        for body in [
            v1_updated(json!({"id": 4711, "email": [{"value": "", "primary": true}]})),
            v1_updated(json!({"id": 4711, "email": "Name <a@example.com>"})),
            v2_change(json!({"id": 4711, "emails": []})),
            v2_change(json!({"id": 4711, "emails": vec![json!({"value": "a@example.com"}); 101]})),
            json!({"event": "updated.person", "meta": {"action": "updated", "object": "person"}}),
            json!({"meta": {"action": "change", "entity": "person"}, "data": {}}),
        ] {
            let answer = item(body.clone(), &owners);
            assert!(matches!(answer, Item::Ignored { .. }), "{body}: {answer:?}");
        }
    }
}
