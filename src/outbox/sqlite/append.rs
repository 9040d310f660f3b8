//! Appends a whole batch with multi-row INSERTs (one per power-of-two run, [`super::runs`]), so
//! a batch costs a few statements instead of one per event, and maps the inserted rows back to
//! the events that asked for them. Events of a CRM record are first checked against the records
//! already queued or refused (one query per run), and the records of the rows stored are
//! remembered.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection};

use super::records;
use crate::outbox::batch::{self, Inserted, Key};
use crate::outbox::{Accepted, NewEvent};

/// Appends `events` (inside the caller's transaction), as [`batch`] decides: an event of a CRM
/// record only if its [`OnlyIf`](crate::outbox::OnlyIf) holds, then every other; a repeated
/// event id, in the database or earlier in the batch, stores nothing and answers with the
/// first row's id.
pub(super) async fn insert_batch(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    let keys = batch::record_keys(events);
    let known = if keys.is_empty() {
        HashMap::new()
    } else {
        records::states(conn, &keys).await?
    };
    let decisions = batch::decide(events, &known);
    let to_insert = batch::to_insert(events, &decisions);
    let inserted = if to_insert.is_empty() {
        Vec::new()
    } else {
        insert_rows(conn, &to_insert, now).await?
    };
    let (accepted, remembered) = batch::answers(events, &decisions, inserted, &known)?;
    if !remembered.is_empty() {
        records::remember(conn, &remembered, now).await?;
    }
    Ok(accepted)
}

/// Inserts `events`; a repeated event id, in the database or earlier in the batch, stores
/// nothing and answers with the first row's id.
async fn insert_rows(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    let mut inserted: Vec<Inserted> = Vec::with_capacity(events.len());
    for run in super::runs(events) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO outbox (source, event_id, email, crm_record, payload, next_attempt_at, received_at, updated_at) ",
        );
        insert.push_values(run, |mut row, event| {
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
        let rows: Vec<Inserted> = insert
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .context("Failed to insert outbox rows")?;
        inserted.extend(rows);
    }

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
    batch::assign(events, inserted, &earlier)
        .context("Failed to match inserted outbox rows to their events")
}
