//! CRM records: which the bridge has queued (`crm_records`, never pruned) and which it refused
//! and has not queued since, so a contact is queued once whether it came by webhook, by
//! reconcile or both, and a refused one once its email arrives.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection};

use crate::outbox::{CrmRecord, NewEvent, OnlyIf, RecordState};

#[derive(sqlx::FromRow)]
struct Row {
    source: String,
    record_id: String,
    outbox_id: Option<i64>,
    open_refusal: bool,
}

/// The state of each `(source, record id)` in `keys`, in one query (absent: never seen).
pub(super) async fn states<'k>(
    conn: &mut SqliteConnection,
    keys: &[(&'k str, &'k str)],
) -> anyhow::Result<HashMap<(&'k str, &'k str), RecordState>> {
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new("WITH wanted (source, record_id) AS (");
    // SQLite takes VALUES as a table expression; 999 variables is no limit since 3.32.
    query.push_values(keys, |mut row, (source, record_id)| {
        row.push_bind(*source).push_bind(*record_id);
    });
    query.push(
        ") SELECT w.source, w.record_id, c.outbox_id,
                  EXISTS (SELECT 1 FROM refused r INDEXED BY refused_open_record
                          WHERE r.source = w.source AND r.record_id = w.record_id
                            AND r.record_id IS NOT NULL AND r.resolved_outbox_id IS NULL)
                      AS open_refusal
           FROM wanted w LEFT JOIN crm_records c
             ON c.source = w.source AND c.record_id = w.record_id",
    );
    let rows: Vec<Row> = query
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .context("Failed to read the CRM records of a batch")?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let Some(&key) = keys
            .iter()
            .find(|(s, r)| *s == row.source && *r == row.record_id)
        else {
            continue;
        };
        states.insert(
            key,
            RecordState {
                outbox_id: row.outbox_id,
                open_refusal: row.open_refusal,
            },
        );
    }
    Ok(states)
}

/// Remembers that row `outbox_id` queued `event`'s record and resolves the record's open
/// refusals.
pub(super) async fn remember(
    conn: &mut SqliteConnection,
    event: &NewEvent,
    record: &CrmRecord,
    outbox_id: i64,
    now: i64,
) -> anyhow::Result<()> {
    // A CRM's webhook names its event; a reconcile's listing has no event.
    let came_by = match (record.only_if, &event.event_id) {
        (OnlyIf::Refused, _) => "update",
        (OnlyIf::Unseen, Some(_)) => "webhook",
        (OnlyIf::Unseen, None) => "reconcile",
    };
    let source = event.source;
    sqlx::query(
        "INSERT INTO crm_records (source, record_id, outbox_id, came_by, seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (source, record_id) DO UPDATE SET outbox_id = excluded.outbox_id",
    )
    .bind(source)
    .bind(&record.id)
    .bind(outbox_id)
    .bind(came_by)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("Failed to remember a CRM record")?;
    sqlx::query(
        "UPDATE refused SET resolved_outbox_id = ?3
         WHERE source = ?1 AND record_id = ?2 AND resolved_outbox_id IS NULL",
    )
    .bind(source)
    .bind(&record.id)
    .bind(outbox_id)
    .execute(&mut *conn)
    .await
    .context("Failed to resolve a refused CRM record")?;
    Ok(())
}
