//! A Pipedrive webhook body as one item: a person creation (v1 `added.person`, v2
//! `create.person`) becomes a guest, or a guest waiting for its organisation's name; an update
//! (v1 `updated.person`, v2 `change.person`) may bring a refused person's email (`update.rs`).

use serde_json::{Map, Value};

use super::SOURCE;
use super::update::updated;
use crate::configuration::OwnerMembers;
use crate::crm::pipedrive::person::{Lists, Person, TooMany};
use crate::crm::pipedrive::values::{id_of, text};
use crate::domain::LIST_MAX;
use crate::ingest::IngestError;
use crate::ingest::sources::{Item, RecordIds, RowKey};
use crate::outbox::CrmRecord;

/// How the adapter turns a person into its event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading<'a> {
    /// A person whose organisation is named only by id waits for the worker to read the name
    /// (an API token is configured); else the guest gets no company.
    pub reads_orgs: bool,
    pub owners: &'a OwnerMembers,
}

/// The parts of a webhook body both versions have, named the way each names them.
pub(super) struct Envelope<'a> {
    pub meta: &'a Map<String, Value>,
    /// `action.object`, e.g. `added.person` (v1) or `create.person` (v2).
    pub event: String,
    /// Where the person is: v1 `current`, v2 `data`.
    pub person_key: &'static str,
    pub lists: Lists,
    /// The person's id is in meta.id (v1) or meta.entity_id (v2; its meta.id is the event's).
    pub id_key: &'static str,
}

impl<'a> Envelope<'a> {
    fn read(body: &'a Map<String, Value>) -> Result<Self, IngestError> {
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
        if meta.contains_key("entity") || body.contains_key("data") {
            return Ok(Self {
                meta,
                event: format!("{}.{}", text(meta, "action"), text(meta, "entity")),
                person_key: "data",
                lists: Lists::V2,
                id_key: "entity_id",
            });
        }
        let event = match body.get("event").and_then(Value::as_str) {
            Some(event) => event.to_owned(),
            None => format!("{}.{}", text(meta, "action"), text(meta, "object")),
        };
        Ok(Self {
            meta,
            event,
            person_key: "current",
            lists: Lists::V1,
            id_key: "id",
        })
    }

    pub fn person<'b>(&self, body: &'b Map<String, Value>) -> Option<&'b Map<String, Value>> {
        body.get(self.person_key).and_then(Value::as_object)
    }

    pub fn company_id(&self) -> Option<String> {
        id_of(self.meta.get("company_id"))
    }

    pub fn person_id(&self, person: &Map<String, Value>) -> Option<String> {
        id_of(self.meta.get(self.id_key)).or_else(|| id_of(person.get("id")))
    }

    pub fn email_field(&self) -> String {
        format!("{}.{}", self.person_key, self.lists.emails())
    }
}

/// The webhook's one item: a person creation, a person update, or anything else (ignored).
pub(super) fn person_event(
    body: &Map<String, Value>,
    reading: Reading<'_>,
) -> Result<Item, IngestError> {
    let envelope = Envelope::read(body)?;
    match envelope.event.as_str() {
        "create.person" | "added.person" => created(body, &envelope, reading),
        "change.person" | "updated.person" => Ok(updated(body, &envelope, reading)),
        other => Ok(Item::Ignored {
            reason: format!("{other} is neither a person creation nor an update"),
        }),
    }
}

fn created(
    body: &Map<String, Value>,
    envelope: &Envelope<'_>,
    reading: Reading<'_>,
) -> Result<Item, IngestError> {
    let person_key = envelope.person_key;
    let Some(person) = envelope.person(body) else {
        return Err(IngestError::invalid(
            person_key,
            "missing_field",
            &format!("{person_key} must hold the created person"),
        ));
    };
    let company_id = envelope.company_id().ok_or_else(|| {
        IngestError::invalid(
            "meta.company_id",
            "missing_field",
            "meta.company_id is required",
        )
    })?;
    let person_id = envelope.person_id(person).ok_or_else(|| {
        IngestError::invalid(
            &format!("{person_key}.id"),
            "missing_field",
            "the person's id is required",
        )
    })?;
    let record = RecordIds::record(&person_id);
    // One key per created person: a retry, and a v1 and a v2 webhook both configured, store one.
    let event_id = format!("{company_id}:person:{person_id}:created");
    let Person { draft, extras } = match Person::read(person, envelope.lists) {
        Ok(person) => person,
        Err(TooMany { list, len }) => {
            return Ok(Item::rejected(
                Some(event_id),
                &format!("{person_key}.{list}"),
                "too_many",
                &format!("{list} has {len} entries; a person may have at most {LIST_MAX}"),
                record,
            ));
        }
    };
    Ok(match draft.into_guest() {
        Ok(drafted) => Item::event(
            SOURCE,
            event_id,
            RowKey::Email(drafted.normalised_email.into()),
            record.record_id.clone().map(CrmRecord::unseen),
            extras.event(drafted.guest, reading.reads_orgs, reading.owners),
            drafted.dropped.iter().map(|p| p.field).collect(),
        ),
        Err(problem) => Item::rejected(
            Some(event_id),
            &envelope.email_field(),
            problem.code,
            &problem.message,
            record,
        ),
    })
}

#[cfg(test)]
#[path = "person_tests.rs"]
mod tests;
