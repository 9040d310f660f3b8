//! The Pipedrive adapter's reading of person webhooks, v1 and v2.

use super::*;
use crate::domain::event::StoredEvent;
use serde_json::json;

static NO_OWNERS: std::sync::LazyLock<OwnerMembers> =
    std::sync::LazyLock::new(OwnerMembers::default);

fn reading(reads_orgs: bool) -> Reading<'static> {
    Reading {
        reads_orgs,
        owners: &NO_OWNERS,
    }
}

fn item(body: Value) -> Item {
    let Value::Object(body) = body else {
        panic!("object")
    };
    person_event(&body, reading(false)).expect("a Pipedrive envelope")
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
    let Ok(Item::Event { event, .. }) = person_event(&body, reading(true)) else {
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
    let Ok(Item::Event { event, .. }) = person_event(&body, reading(false)) else {
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
        person_event(&body, reading(false)),
        Err(IngestError::Invalid { field, .. }) if field == "meta"
    ));
}
