//! A Pipedrive person as its webhooks (v1 `current`, v2 `data`) and its v2 API describe it, read
//! one way, so a webhook's guest and a reconcile's guest of the same person are the same.

use serde_json::{Map, Value};

use super::values::{id_of, primary, string};
use crate::configuration::OwnerMembers;
use crate::domain::event::StoredEvent;
use crate::domain::{ContactDraft, Guest, LIST_MAX};

/// What the person's email and phone lists are called: v1 webhooks say `email`/`phone`, v2
/// webhooks and the v2 API `emails`/`phones`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    V1,
    V2,
}

impl Lists {
    pub fn emails(self) -> &'static str {
        match self {
            Self::V1 => "email",
            Self::V2 => "emails",
        }
    }

    fn phones(self) -> &'static str {
        match self {
            Self::V1 => "phone",
            Self::V2 => "phones",
        }
    }
}

/// A list longer than a real person has ([`LIST_MAX`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    pub list: &'static str,
    pub len: usize,
}

/// A person read: the contact to draft, and what decides the event its guest goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub draft: ContactDraft,
    pub extras: Extras,
}

/// The person's organisation and owner, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    /// The organisation, when the person names it only by id (no name to use as company).
    org_id: Option<String>,
    owner_id: Option<String>,
}

impl Person {
    pub fn read(person: &Map<String, Value>, lists: Lists) -> Result<Self, TooMany> {
        let (emails, phones) = (lists.emails(), lists.phones());
        for list in [emails, phones] {
            let len = person
                .get(list)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if len > LIST_MAX {
                return Err(TooMany { list, len });
            }
        }
        let draft = ContactDraft {
            email: primary(person.get(emails)),
            first_name: string(person.get("first_name")),
            last_name: string(person.get("last_name")),
            phone: primary(person.get(phones)),
            company: string(person.get("org_name")).or_else(|| {
                // v1's API form of org_id is an object with the name; webhooks send a bare id.
                person.get("org_id").and_then(|org| string(org.get("name")))
            }),
        };
        let org_id = id_of(person.get("org_id")).filter(|_| draft.company.is_none());
        Ok(Self {
            extras: Extras {
                org_id,
                owner_id: reference(person.get("owner_id")),
            },
            draft,
        })
    }
}

impl Extras {
    /// The event queued for `guest`: associated with the Tallyfy member its owner maps to, and
    /// waiting for its organisation's name when `reads_orgs` (an API token is configured) and
    /// the person names the organisation only by id; else a plain guest (without a company).
    pub fn event(self, mut guest: Guest, reads_orgs: bool, owners: &OwnerMembers) -> StoredEvent {
        guest.associated_members = owners.members(self.owner_id.as_deref());
        match self.org_id.filter(|_| reads_orgs) {
            Some(org_id) => StoredEvent::PipedrivePerson { org_id, guest },
            None => StoredEvent::Guest { guest },
        }
    }
}

/// An id, bare or as v1's API object form (`{"id": 7, "name": …, "value": 7}`).
fn reference(value: Option<&Value>) -> Option<String> {
    let value = value?;
    id_of(Some(value))
        .or_else(|| id_of(value.get("value")))
        .or_else(|| id_of(value.get("id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(person: Value, lists: Lists) -> Result<Person, TooMany> {
        let Value::Object(person) = person else {
            panic!("object")
        };
        Person::read(&person, lists)
    }

    #[test]
    fn the_v2_api_shape_gives_the_draft_the_org_and_the_owner() {
        let person = read(
            json!({"id": 7, "first_name": "Grace", "last_name": "Hopper", "owner_id": 12,
                   "org_id": 42, "add_time": "2026-01-01T00:00:00Z",
                   "emails": [{"value": "a@example.org", "primary": false},
                              {"value": "Grace@example.com", "primary": true}],
                   "phones": [{"value": "+1 415 555 0100", "primary": true}]}),
            Lists::V2,
        )
        .expect("read");
        assert_eq!(person.draft.email.as_deref(), Some("Grace@example.com"));
        assert_eq!(person.draft.phone.as_deref(), Some("+1 415 555 0100"));
        let owners = OwnerMembers::from([("12", 678)]);
        let guest = Guest::new("Grace@example.com");
        let StoredEvent::PipedrivePerson { org_id, guest } =
            person.extras.clone().event(guest.clone(), true, &owners)
        else {
            panic!("an organisation to read")
        };
        assert_eq!(org_id, "42");
        assert_eq!(guest.associated_members, Some(vec![678]));
        // Without an API token the organisation cannot be read: a plain guest.
        assert!(matches!(
            person.extras.event(guest, false, &owners),
            StoredEvent::Guest { .. }
        ));
    }

    #[test]
    fn an_owner_not_mapped_or_absent_associates_no_member() {
        let owners = OwnerMembers::from([("12", 678)]);
        for owner in [json!(13), json!(null), json!({"id": 13, "name": "Other"})] {
            let person =
                read(json!({"owner_id": owner, "org_name": "X"}), Lists::V1).expect("read");
            let StoredEvent::Guest { guest } =
                person
                    .extras
                    .event(Guest::new("a@example.com"), true, &owners)
            else {
                panic!("a guest: the company is named")
            };
            assert_eq!(guest.associated_members, None, "{owner}");
        }
        let person = read(json!({"owner_id": {"id": 12, "value": 12}}), Lists::V1).expect("read");
        assert_eq!(person.extras.owner_id.as_deref(), Some("12"));
    }

    #[test]
    fn a_named_organisation_is_the_company_and_nothing_is_read() {
        let person = read(
            json!({"org_id": {"value": 42, "name": "Navy Labs"}}),
            Lists::V2,
        )
        .expect("read");
        assert_eq!(person.draft.company.as_deref(), Some("Navy Labs"));
        assert_eq!(person.extras.org_id, None);
    }

    #[test]
    fn lists_longer_than_a_person_has_are_refused_by_name() {
        let many = vec![json!({"value": "a@example.com"}); LIST_MAX + 1];
        assert_eq!(
            read(json!({"phones": many}), Lists::V2),
            Err(TooMany {
                list: "phones",
                len: LIST_MAX + 1
            })
        );
    }
}
