//! Appends a whole batch with one multi-row INSERT, so a batch costs a few statements instead
//! of one per event, and maps the inserted rows back to the events that asked for them. Events
//! of a CRM record are first checked against the records already queued or refused (one query
//! for the batch), and the records of the rows stored are remembered.

use std::collections::{HashMap, HashSet, VecDeque};

use anyhow::Context;
use sqlx::sqlite::{Sqlite, SqliteConnection};
use sqlx::{FromRow, QueryBuilder};

use super::records;
use crate::outbox::{Accepted, NewEvent, OnlyIf, RecordState};

#[derive(Debug, Clone, FromRow)]
struct Inserted {
    id: i64,
    source: String,
    event_id: Option<String>,
    email: Option<String>,
}

type Key = (String, String);

/// What to do with one event of the batch.
enum Decision {
    Insert,
    /// The same CRM record as the event at this index, earlier in the batch.
    SameAs(usize),
    Known(Accepted),
}

/// Appends `events` (inside the caller's transaction): an event of a CRM record only if its
/// [`OnlyIf`] holds (else the row already holding the record, or nothing), then every other; a
/// repeated event id, in the database or earlier in the batch, stores nothing and answers with
/// the first row's id.
pub(super) async fn insert_batch(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    let keys: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| Some((e.source, e.record.as_ref()?.id.as_str())))
        .collect();
    let known = if keys.is_empty() {
        HashMap::new()
    } else {
        records::states(conn, &keys).await?
    };
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
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

    let to_insert: Vec<&NewEvent> = events
        .iter()
        .zip(&decisions)
        .filter(|(_, decision)| matches!(decision, Decision::Insert))
        .map(|(event, _)| *event)
        .collect();
    let mut inserted = if to_insert.is_empty() {
        Vec::new()
    } else {
        insert_rows(conn, &to_insert, now).await?
    }
    .into_iter();
    let mut accepted: Vec<Accepted> = Vec::with_capacity(events.len());
    let mut remembered = Vec::new();
    for (event, decision) in events.iter().zip(&decisions) {
        let answer = match decision {
            Decision::Insert => {
                let answer = inserted
                    .next()
                    .context("Failed to match inserted outbox rows to their events")?;
                if let (Some(record), Accepted::Stored { id }) = (&event.record, answer) {
                    let key = (event.source, record.id.as_str());
                    let open_refusal = known.get(&key).is_some_and(|s| s.open_refusal);
                    remembered.push(records::Remembered {
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
    if !remembered.is_empty() {
        records::remember(conn, &remembered, now).await?;
    }
    Ok(accepted)
}

/// The answer for an event of a record that is not queued again.
fn state_answer(state: RecordState) -> Accepted {
    match state.outbox_id {
        Some(id) => Accepted::Duplicate { id },
        None => Accepted::NotNeeded,
    }
}

/// Inserts `events`; a repeated event id, in the database or earlier in the batch, stores
/// nothing and answers with the first row's id.
async fn insert_rows(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO outbox (source, event_id, email, crm_record, payload, next_attempt_at, received_at, updated_at) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(event.source)
            .push_bind(event.event_id.as_deref())
            .push_bind(event.email.as_deref())
            .push_bind(event.crm_record.as_deref())
            .push_bind(event.payload.as_str())
            .push_bind(now)
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(" ON CONFLICT DO NOTHING RETURNING id, source, event_id, email");
    let inserted: Vec<Inserted> = insert
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .context("Failed to insert outbox rows")?;

    let fresh: HashSet<Key> = inserted
        .iter()
        .filter_map(|row| Some((row.source.clone(), row.event_id.clone()?)))
        .collect();
    let mut earlier = HashMap::new();
    for event in events {
        let Some(event_id) = &event.event_id else {
            continue;
        };
        let key = (event.source.to_owned(), event_id.clone());
        if fresh.contains(&key) || earlier.contains_key(&key) {
            continue;
        }
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM outbox WHERE source = ?1 AND event_id = ?2")
                .bind(event.source)
                .bind(event_id)
                .fetch_one(&mut *conn)
                .await
                .context("Failed to find the stored event a duplicate refers to")?;
        earlier.insert(key, id);
    }
    assign(events, inserted, &earlier)
        .context("Failed to match inserted outbox rows to their events")
}

/// Which row each event got. RETURNING yields rows in no set order, but SQLite allocates rowids
/// in the order VALUES are processed, so rows without an event id are matched by ascending id
/// (and checked by email); any inconsistency is an error, which rolls the batch back.
fn assign(
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
