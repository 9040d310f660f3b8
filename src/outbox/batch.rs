//! What an append batch does, whichever backend stores it: which events need a row (by their
//! CRM record's state), what each event is answered once the rows are in, and which row each
//! event got. The backends' `append.rs` only read the records' states and insert.

use std::collections::{HashMap, HashSet, VecDeque};

use anyhow::Context;

use crate::outbox::{Accepted, CrmRecord, NewEvent, OnlyIf, RecordState};

/// A row an INSERT … RETURNING gave back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Inserted {
    pub id: i64,
    pub source: String,
    pub event_id: Option<String>,
    pub email: Option<String>,
}

/// `(source, event_id)`.
pub(crate) type Key = (String, String);

/// `(source, record id)` of a CRM record.
pub(crate) type RecordKey<'k> = (&'k str, &'k str);

/// What to do with one event of the batch.
pub(crate) enum Decision {
    Insert,
    /// The same CRM record as the event at this index, earlier in the batch.
    SameAs(usize),
    Known(Accepted),
}

/// A stored row that queued a CRM record, to remember with it.
pub(crate) struct Remembered<'a> {
    pub event: &'a NewEvent,
    pub record: &'a CrmRecord,
    pub outbox_id: i64,
    /// The record had a refusal this row resolves.
    pub open_refusal: bool,
}

/// The CRM records the events name, to read the states of.
pub(crate) fn record_keys<'e>(events: &[&'e NewEvent]) -> Vec<RecordKey<'e>> {
    events
        .iter()
        .filter_map(|e| Some((e.source, e.record.as_ref()?.id.as_str())))
        .collect()
}

/// An event of a CRM record is inserted only if its [`OnlyIf`] holds (else it is answered with
/// the row already holding the record, or nothing), and once per batch; every other event is.
pub(crate) fn decide(
    events: &[&NewEvent],
    known: &HashMap<RecordKey<'_>, RecordState>,
) -> Vec<Decision> {
    let mut first_of: HashMap<RecordKey<'_>, usize> = HashMap::new();
    let mut decisions = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let Some(record) = &event.record else {
            decisions.push(Decision::Insert);
            continue;
        };
        let key = (event.source, record.id.as_str());
        if let Some(&first) = first_of.get(&key) {
            decisions.push(Decision::SameAs(first));
            continue;
        }
        let state = known.get(&key).copied().unwrap_or_default();
        let needed = match record.only_if {
            OnlyIf::Unseen => state.open_refusal || state.outbox_id.is_none(),
            OnlyIf::Refused => state.open_refusal,
        };
        decisions.push(if needed {
            first_of.insert(key, index);
            Decision::Insert
        } else {
            Decision::Known(state_answer(state))
        });
    }
    decisions
}

/// The events to insert, in order.
pub(crate) fn to_insert<'e>(events: &[&'e NewEvent], decisions: &[Decision]) -> Vec<&'e NewEvent> {
    events
        .iter()
        .zip(decisions)
        .filter(|(_, decision)| matches!(decision, Decision::Insert))
        .map(|(event, _)| *event)
        .collect()
}

/// Each event's answer, given what the inserted events got (in order), and the records to
/// remember with their new rows.
pub(crate) fn answers<'e>(
    events: &[&'e NewEvent],
    decisions: &[Decision],
    inserted: Vec<Accepted>,
    known: &HashMap<RecordKey<'_>, RecordState>,
) -> anyhow::Result<(Vec<Accepted>, Vec<Remembered<'e>>)> {
    let mut inserted = inserted.into_iter();
    let mut accepted: Vec<Accepted> = Vec::with_capacity(events.len());
    let mut remembered = Vec::new();
    for (event, decision) in events.iter().zip(decisions) {
        let answer = match decision {
            Decision::Insert => {
                let answer = inserted
                    .next()
                    .context("Failed to match inserted outbox rows to their events")?;
                if let (Some(record), Accepted::Stored { id }) = (&event.record, answer) {
                    let key = (event.source, record.id.as_str());
                    let open_refusal = known.get(&key).is_some_and(|s| s.open_refusal);
                    remembered.push(Remembered {
                        event,
                        record,
                        outbox_id: id,
                        open_refusal,
                    });
                }
                answer
            }
            Decision::SameAs(first) => match accepted.get(*first) {
                Some(Accepted::Stored { id } | Accepted::Duplicate { id }) => {
                    Accepted::Duplicate { id: *id }
                }
                _ => Accepted::NotNeeded,
            },
            Decision::Known(answer) => *answer,
        };
        accepted.push(answer);
    }
    Ok((accepted, remembered))
}

/// The answer for an event of a record that is not queued again.
fn state_answer(state: RecordState) -> Accepted {
    match state.outbox_id {
        Some(id) => Accepted::Duplicate { id },
        None => Accepted::NotNeeded,
    }
}

/// Which row each event got. RETURNING yields rows in no set order, but both backends number
/// new rows in the order they are inserted (SQLite's rowids in VALUES order; PostgreSQL's
/// identity from its sequence in the insert's `ORDER BY`, increasing even while another replica
/// inserts), so rows without an event id are matched by ascending id (and checked by email);
/// any inconsistency is `None`, an error that rolls the batch back. `earlier` holds the rows of
/// event ids stored by an earlier commit.
pub(crate) fn assign(
    events: &[&NewEvent],
    mut inserted: Vec<Inserted>,
    earlier: &HashMap<Key, i64>,
) -> Option<Vec<Accepted>> {
    inserted.sort_by_key(|row| row.id);
    let mut keyed: HashMap<Key, i64> = HashMap::new();
    let mut unkeyed = VecDeque::new();
    for row in inserted {
        match row.event_id {
            Some(event_id) => {
                keyed.insert((row.source, event_id), row.id);
            }
            None => unkeyed.push_back(row),
        }
    }
    let mut claimed = HashSet::new();
    let mut accepted = Vec::with_capacity(events.len());
    for event in events {
        let row = match &event.event_id {
            Some(event_id) => {
                let key = (event.source.to_owned(), event_id.clone());
                match keyed.get(&key) {
                    Some(&id) if claimed.contains(&key) => Accepted::Duplicate { id },
                    Some(&id) => {
                        claimed.insert(key);
                        Accepted::Stored { id }
                    }
                    None => Accepted::Duplicate {
                        id: *earlier.get(&key)?,
                    },
                }
            }
            None => {
                let row = unkeyed.pop_front()?;
                if row.email != event.email || row.source != event.source {
                    return None;
                }
                Accepted::Stored { id: row.id }
            }
        };
        accepted.push(row);
    }
    (unkeyed.is_empty() && claimed.len() == keyed.len()).then_some(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_id: Option<&str>, email: &str) -> NewEvent {
        NewEvent {
            source: "canonical",
            event_id: event_id.map(str::to_owned),
            email: Some(email.into()),
            crm_record: None,
            payload: "{}".into(),
            record: None,
        }
    }

    fn row(id: i64, event_id: Option<&str>, email: &str) -> Inserted {
        Inserted {
            id,
            source: "canonical".into(),
            event_id: event_id.map(str::to_owned),
            email: Some(email.into()),
        }
    }

    #[test]
    fn rows_are_matched_by_event_id_or_insert_order_whatever_order_they_return_in() {
        let events = [
            event(None, "a@x.io"),
            event(Some("e1"), "b@x.io"),
            event(None, "c@x.io"),
            event(Some("e1"), "b@x.io"),
            event(Some("old"), "d@x.io"),
        ];
        let refs: Vec<&NewEvent> = events.iter().collect();
        let returned = vec![
            row(12, None, "c@x.io"),
            row(11, Some("e1"), "b@x.io"),
            row(10, None, "a@x.io"),
        ];
        let earlier = HashMap::from([(("canonical".to_string(), "old".to_string()), 3)]);

        let accepted = assign(&refs, returned, &earlier).expect("consistent");

        assert_eq!(
            accepted,
            [
                Accepted::Stored { id: 10 },
                Accepted::Stored { id: 11 },
                Accepted::Stored { id: 12 },
                Accepted::Duplicate { id: 11 },
                Accepted::Duplicate { id: 3 }
            ]
        );
    }

    #[test]
    fn an_inconsistent_result_is_refused() {
        let events = [event(None, "a@x.io"), event(None, "b@x.io")];
        let refs: Vec<&NewEvent> = events.iter().collect();
        let swapped = vec![row(1, None, "b@x.io"), row(2, None, "a@x.io")];
        assert!(assign(&refs, swapped, &HashMap::new()).is_none());
        let missing = vec![row(1, None, "a@x.io")];
        assert!(assign(&refs, missing, &HashMap::new()).is_none());
    }
}
