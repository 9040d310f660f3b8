//! CRM records: which the bridge has queued (`crm_records`, never pruned) and which it refused
//! and has not queued since, so a contact is queued once whether it came by webhook, by
//! reconcile or both, through one replica or several, and a refused one once its email arrives.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::PgConnection;

use crate::outbox::batch::Remembered;
use crate::outbox::{OnlyIf, RecordState};

#[derive(sqlx::FromRow)]
struct Row {
    source: String,
    record_id: String,
    outbox_id: Option<i64>,
    open_refusal: bool,
}

/// Takes a transaction-scoped lock on each `(source, record id)` in `keys`, so two transactions
/// (of two replicas' writers) that would queue the same record take turns: the second reads the
/// record's state only once the first committed, and sees its row. Until the transaction ends.
///
/// The locks are advisory locks on a 64-bit hash of the key, taken in the order of that hash
/// (not of the key: two keys may share a hash), so every transaction locks in one order and two
/// never wait on each other. A collision only makes two records take turns. PostgreSQL
/// evaluates a volatile function in a select list after the ORDER BY, so the locks are taken in
/// that order.
pub(super) async fn lock(conn: &mut PgConnection, keys: &[(&str, &str)]) -> anyhow::Result<()> {
    let (sources, record_ids): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k)
         FROM (SELECT DISTINCT hashtextextended(source || ':' || record_id, 0) AS k
               FROM unnest($1::text[], $2::text[]) AS w (source, record_id)) AS keys
         ORDER BY k",
    )
    .bind(sources)
    .bind(record_ids)
    .execute(&mut *conn)
    .await
    .context("Failed to lock the CRM records of a batch")?;
    Ok(())
}

/// The state of each `(source, record id)` in `keys`, in one query (absent: never seen).
pub(super) async fn states<'k>(
    conn: &mut PgConnection,
    keys: &[(&'k str, &'k str)],
) -> anyhow::Result<HashMap<(&'k str, &'k str), RecordState>> {
    let (sources, record_ids): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
    let rows: Vec<Row> = sqlx::query_as(STATES)
        .bind(sources)
        .bind(record_ids)
        .fetch_all(&mut *conn)
        .await
        .context("Failed to read the CRM records of a batch")?;
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
/// by their partial index, one probe per key (a LATERAL with LIMIT 1, where an EXISTS could be
/// planned as a hash of every open refusal).
const STATES: &str = "SELECT w.source, w.record_id, c.outbox_id, o.open IS NOT NULL AS open_refusal
    FROM unnest($1::text[], $2::text[]) AS w (source, record_id)
    LEFT JOIN crm_records c ON c.source = w.source AND c.record_id = w.record_id
    LEFT JOIN LATERAL (
        SELECT true AS open FROM refused r
        WHERE r.source = w.source AND r.record_id = w.record_id
          AND r.record_id IS NOT NULL AND r.resolved_outbox_id IS NULL
        LIMIT 1) AS o ON true";

/// Remembers which row queued each record (one statement for the batch) and resolves the open
/// refusals among them (one more). The caller holds the records' [`lock`]s, and `rows` names
/// each record once, so the upsert neither waits nor touches a row twice.
pub(super) async fn remember(
    conn: &mut PgConnection,
    rows: &[Remembered<'_>],
    now: i64,
) -> anyhow::Result<()> {
    let mut sources = Vec::with_capacity(rows.len());
    let mut record_ids = Vec::with_capacity(rows.len());
    let mut outbox_ids = Vec::with_capacity(rows.len());
    let mut came_bys = Vec::with_capacity(rows.len());
    for stored in rows {
        // A CRM's webhook names its event; a reconcile's listing has no event.
        let came_by = match (stored.record.only_if, &stored.event.event_id) {
            (OnlyIf::Refused, _) => "update",
            (OnlyIf::Unseen, Some(_)) => "webhook",
            (OnlyIf::Unseen, None) => "reconcile",
        };
        sources.push(stored.event.source);
        record_ids.push(stored.record.id.as_str());
        outbox_ids.push(stored.outbox_id);
        came_bys.push(came_by);
    }
    sqlx::query(
        "INSERT INTO crm_records (source, record_id, outbox_id, came_by, seen_at)
         SELECT source, record_id, outbox_id, came_by, $5
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
             AS r (source, record_id, outbox_id, came_by)
         ON CONFLICT (source, record_id) DO UPDATE SET outbox_id = excluded.outbox_id",
    )
    .bind(&sources)
    .bind(&record_ids)
    .bind(&outbox_ids)
    .bind(&came_bys)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("Failed to remember CRM records")?;

    let resolving: Vec<&Remembered<'_>> = rows.iter().filter(|r| r.open_refusal).collect();
    if resolving.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = resolving.iter().map(|r| r.event.source).collect();
    let record_ids: Vec<&str> = resolving.iter().map(|r| r.record.id.as_str()).collect();
    let outbox_ids: Vec<i64> = resolving.iter().map(|r| r.outbox_id).collect();
    sqlx::query(
        "UPDATE refused r SET resolved_outbox_id = v.outbox_id
         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v (source, record_id, outbox_id)
         WHERE r.source = v.source AND r.record_id = v.record_id
           AND r.record_id IS NOT NULL AND r.resolved_outbox_id IS NULL",
    )
    .bind(&sources)
    .bind(&record_ids)
    .bind(&outbox_ids)
    .execute(&mut *conn)
    .await
    .context("Failed to resolve refused CRM records")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{CrmRecord, NewEvent};

    #[tokio::test]
    async fn a_batch_of_records_is_read_by_key_whatever_the_tables_hold() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // The planner goes by statistics: with empty tables it rightly reads them whole, which
        // says nothing of 1 M rows. 20 000 records, 2 000 of them refused (1 000 still open).
        for fill in [
            "INSERT INTO crm_records (source, record_id, outbox_id, came_by, seen_at)
             SELECT 'pipedrive', i::text, i, 'webhook', i FROM generate_series(1, 20000) AS i",
            "INSERT INTO refused (source, record_id, reason, field, refused_at, resolved_outbox_id)
             SELECT 'pipedrive', i::text, 'missing_field', 'email', i,
                    CASE WHEN i % 2 = 0 THEN i END
             FROM generate_series(1, 20000, 10) AS i",
            "ANALYZE",
        ] {
            sqlx::query(fill).execute(&pool).await.expect("fill");
        }
        let sql = STATES
            .replace("$1::text[]", "ARRAY['pipedrive', 'pipedrive']")
            .replace("$2::text[]", "ARRAY['1', '2']");
        let text = super::super::query_plan(&pool, &sql).await.join("\n");
        assert!(
            text.contains("Index Scan using crm_records_pkey on crm_records c"),
            "{text}"
        );
        assert!(
            text.contains("using refused_open_record on refused r"),
            "{text}"
        );
        // Each probe is bounded by the key, not a read of every open refusal.
        assert!(
            text.contains("Index Cond: ((source = w.source) AND (record_id = w.record_id))"),
            "{text}"
        );
        assert_eq!(text.matches("Index Cond").count(), 2, "{text}");
        assert!(!text.contains("Seq Scan"), "{text}");
    }

    fn event(source: &'static str, event_id: Option<&str>, record: CrmRecord) -> NewEvent {
        NewEvent {
            source,
            event_id: event_id.map(str::to_owned),
            email: None,
            crm_record: Some(format!("{source}:{}", record.id)),
            payload: "{}".into(),
            record: Some(record),
        }
    }

    #[tokio::test]
    async fn remembered_records_are_known_and_resolve_their_refusals() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO refused (source, record_id, reason, field, refused_at)
             VALUES ('hubspot', '9', 'missing_field', 'email', 1),
                    ('hubspot', '10', 'missing_field', 'email', 1)",
        )
        .execute(&pool)
        .await
        .expect("refusals");
        let mut conn = pool.acquire().await.expect("connection");
        let keys = [("hubspot", "8"), ("hubspot", "9"), ("hubspot", "10")];
        let before = states(&mut conn, &keys).await.expect("states");
        let open = RecordState {
            outbox_id: None,
            open_refusal: true,
        };
        // As on SQLite, a key never seen is there with the empty state.
        assert_eq!(
            before,
            HashMap::from([
                (("hubspot", "8"), RecordState::default()),
                (("hubspot", "9"), open),
                (("hubspot", "10"), open)
            ])
        );

        let (webhook, update) = (
            event("hubspot", Some("e8"), CrmRecord::unseen("8")),
            event("hubspot", Some("e9"), CrmRecord::refused("9")),
        );
        let rows = [
            Remembered {
                event: &webhook,
                record: webhook.record.as_ref().expect("record"),
                outbox_id: 5,
                open_refusal: false,
            },
            Remembered {
                event: &update,
                record: update.record.as_ref().expect("record"),
                outbox_id: 6,
                open_refusal: true,
            },
        ];
        remember(&mut conn, &rows, 2).await.expect("remember");

        let after = states(&mut conn, &keys).await.expect("states");
        assert_eq!(
            after,
            HashMap::from([
                (
                    ("hubspot", "8"),
                    RecordState {
                        outbox_id: Some(5),
                        open_refusal: false
                    }
                ),
                (
                    ("hubspot", "9"),
                    RecordState {
                        outbox_id: Some(6),
                        open_refusal: false
                    }
                ),
                (("hubspot", "10"), open),
            ])
        );
        let came_by: Vec<(String, String)> =
            sqlx::query_as("SELECT record_id, came_by FROM crm_records ORDER BY record_id")
                .fetch_all(&mut *conn)
                .await
                .expect("records");
        assert_eq!(
            came_by,
            [
                ("8".into(), "webhook".into()),
                ("9".into(), "update".into())
            ]
        );
    }
}
