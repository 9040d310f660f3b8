//! CRM records: which the bridge has queued (`crm_records`, never pruned) and which it refused
//! and has not queued since, so a contact is queued once whether it came by webhook, by
//! reconcile or both, and a refused one once its email arrives.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection};

use crate::outbox::batch::Remembered;
use crate::outbox::{OnlyIf, RecordState};

#[derive(sqlx::FromRow)]
struct Row {
    source: String,
    record_id: String,
    outbox_id: Option<i64>,
    open_refusal: bool,
}

/// The state of each `(source, record id)` in `keys`, in one query per run (absent: never
/// seen).
pub(super) async fn states<'k>(
    conn: &mut SqliteConnection,
    keys: &[(&'k str, &'k str)],
) -> anyhow::Result<HashMap<(&'k str, &'k str), RecordState>> {
    let mut rows: Vec<Row> = Vec::with_capacity(keys.len());
    for run in super::runs(keys) {
        let found: Vec<Row> = states_query(run)
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .context("Failed to read the CRM records of a batch")?;
        rows.extend(found);
    }
    let mut found: HashMap<(String, String), RecordState> = rows
        .into_iter()
        .map(|row| {
            let state = RecordState {
                outbox_id: row.outbox_id,
                open_refusal: row.open_refusal,
            };
            ((row.source, row.record_id), state)
        })
        .collect();
    let mut states = HashMap::with_capacity(keys.len());
    for &(source, record_id) in keys {
        if let Some(state) = found.remove(&(source.to_owned(), record_id.to_owned())) {
            states.insert((source, record_id), state);
        }
    }
    Ok(states)
}

/// One query for the state of every key: the ledger of records by primary key, open refusals
/// by their partial index.
fn states_query(keys: &[(&str, &str)]) -> QueryBuilder<Sqlite> {
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
    query
}

/// Remembers which row queued each record (one statement per run) and resolves the open
/// refusals among them.
pub(super) async fn remember(
    conn: &mut SqliteConnection,
    rows: &[Remembered<'_>],
    now: i64,
) -> anyhow::Result<()> {
    for run in super::runs(rows) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO crm_records (source, record_id, outbox_id, came_by, seen_at) ",
        );
        insert.push_values(run, |mut row, stored| {
            // A CRM's webhook names its event; a reconcile's listing has no event.
            let came_by = match (stored.record.only_if, &stored.event.event_id) {
                (OnlyIf::Refused, _) => "update",
                (OnlyIf::Unseen, Some(_)) => "webhook",
                (OnlyIf::Unseen, None) => "reconcile",
            };
            row.push_bind(stored.event.source)
                .push_bind(stored.record.id.as_str())
                .push_bind(stored.outbox_id)
                .push_bind(came_by)
                .push_bind(now);
        });
        insert
            .push(" ON CONFLICT (source, record_id) DO UPDATE SET outbox_id = excluded.outbox_id");
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to remember CRM records")?;
    }
    for stored in rows.iter().filter(|r| r.open_refusal) {
        sqlx::query(
            "UPDATE refused SET resolved_outbox_id = ?3
             WHERE source = ?1 AND record_id = ?2 AND resolved_outbox_id IS NULL",
        )
        .bind(stored.event.source)
        .bind(&stored.record.id)
        .bind(stored.outbox_id)
        .execute(&mut *conn)
        .await
        .context("Failed to resolve a refused CRM record")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::sqlite::query_plan;

    #[tokio::test]
    async fn a_batch_of_records_is_read_by_key_whatever_the_tables_hold() {
        let keys = [("pipedrive", "1"), ("pipedrive", "2")];
        let plan = query_plan(states_query(&keys).sql().as_str()).await;
        let text = plan.join("\n");
        assert!(text.contains("SEARCH c USING PRIMARY KEY"), "{text}");
        assert!(
            text.contains("SEARCH r USING INDEX refused_open_record"),
            "{text}"
        );
        assert!(
            !plan
                .iter()
                .any(|line| line.starts_with("SCAN c") || line.starts_with("SCAN r")),
            "{text}"
        );
    }
}
