//! Appends a whole batch with one multi-row INSERT, so a batch costs a few statements instead
//! of one per event, and maps the inserted rows back to the events that asked for them. Events
//! of a CRM record are first checked against the records already queued or refused (one query
//! for the batch, under a lock per record), and the records of the rows stored are remembered.
//!
//! Several replicas' writers append at once, each in its own READ COMMITTED transaction:
//! - the same event id in two transactions: the unique `outbox_source_event` index makes the
//!   second INSERT wait for the first; once it commits, `ON CONFLICT DO NOTHING` skips the row
//!   and the next statement (a new snapshot) reads the winner's id, so one row and one
//!   `Stored`, the other caller `Duplicate` of it (if the first rolled back, the second
//!   inserts);
//! - the same CRM record in two transactions: [`records::lock`] makes them take turns before
//!   either reads the record's state, so the second sees the first's row;
//! - rows go in ordered by event id, so two batches that share event ids wait on them in the
//!   same order and never on each other (no deadlock); the record locks come first in the
//!   transaction, so one waiting for them holds nothing but such locks, taken in one order.
//!
//! Refusals take no record lock: one kept while another transaction queues its record ends as
//! if it came just after (left open, as SQLite leaves a refusal kept after the record's row).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::PgConnection;

use super::records;
use crate::outbox::batch::{self, Inserted, Key};
use crate::outbox::{Accepted, NewEvent};

/// Appends `events` (inside the caller's transaction), as [`batch`] decides: an event of a CRM
/// record only if its [`OnlyIf`](crate::outbox::OnlyIf) holds, then every other; a repeated
/// event id, in the database or earlier in the batch, stores nothing and answers with the
/// first row's id.
pub(super) async fn insert_batch(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    let keys = batch::record_keys(events);
    let known = if keys.is_empty() {
        HashMap::new()
    } else {
        // Before reading: another replica's transaction queuing one of these records commits
        // first, and its row is then seen here.
        records::lock(conn, &keys).await?;
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
    conn: &mut PgConnection,
    events: &[&NewEvent],
    now: i64,
) -> anyhow::Result<Vec<Accepted>> {
    // In event id order (a stable sort: the first of a repeated id stays first, rows without
    // one keep their order), so concurrent batches wait on shared ids in one order.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| {
        events[i]
            .event_id
            .as_deref()
            .map(|id| (events[i].source, id))
    });
    let sorted: Vec<&NewEvent> = order.iter().map(|&i| events[i]).collect();

    // Arrays, not one VALUES tuple per event: one statement text (prepared once) for every
    // batch size, and no limit of 65535 parameters on the batch.
    let inserted: Vec<Inserted> = sqlx::query_as(
        "INSERT INTO outbox (source, event_id, email, crm_record, payload, next_attempt_at, received_at, updated_at)
         SELECT source, event_id, email, crm_record, payload, $6, $6, $6
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
             AS e (source, event_id, email, crm_record, payload, n)
         ORDER BY n
         ON CONFLICT (source, event_id) WHERE event_id IS NOT NULL DO NOTHING
         RETURNING id, source, event_id, email",
    )
    .bind(sorted.iter().map(|e| e.source).collect::<Vec<&str>>())
    .bind(sorted.iter().map(|e| e.event_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|e| e.email.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|e| e.crm_record.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|e| e.payload.as_str()).collect::<Vec<&str>>())
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .context("Failed to insert outbox rows")?;

    let fresh: HashSet<Key> = inserted
        .iter()
        .filter_map(|row| Some((row.source.clone(), row.event_id.clone()?)))
        .collect();
    // The ids already stored (by an earlier commit, or another replica's that just committed).
    let mut missing: Vec<(&str, &str)> = sorted
        .iter()
        .filter_map(|e| Some((e.source, e.event_id.as_deref()?)))
        .filter(|&(source, id)| !fresh.contains(&(source.to_owned(), id.to_owned())))
        .collect();
    missing.dedup();
    let earlier: HashMap<Key, i64> = if missing.is_empty() {
        HashMap::new()
    } else {
        let (sources, event_ids): (Vec<&str>, Vec<&str>) = missing.into_iter().unzip();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT o.source, o.event_id, o.id
             FROM unnest($1::text[], $2::text[]) AS w (source, event_id)
             JOIN outbox o ON o.source = w.source AND o.event_id = w.event_id
                 AND o.event_id IS NOT NULL",
        )
        .bind(sources)
        .bind(event_ids)
        .fetch_all(&mut *conn)
        .await
        .context("Failed to find the stored events duplicates refer to")?;
        rows.into_iter()
            .map(|(source, event_id, id)| ((source, event_id), id))
            .collect()
    };
    let accepted = batch::assign(&sorted, inserted, &earlier)
        .context("Failed to match inserted outbox rows to their events")?;
    // Back to the events' order.
    let mut answers = vec![Accepted::NotNeeded; events.len()];
    for (&index, answer) in order.iter().zip(accepted) {
        answers[index] = answer;
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::CrmRecord;

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

    fn of_record(event_id: Option<&str>, record: CrmRecord) -> NewEvent {
        NewEvent {
            source: "hubspot",
            event_id: event_id.map(str::to_owned),
            email: None,
            crm_record: Some(format!("hubspot:1:{}", record.id)),
            payload: "{}".into(),
            record: Some(record),
        }
    }

    async fn append(pool: &sqlx::PgPool, events: &[&NewEvent], now: i64) -> Vec<Accepted> {
        let mut tx = pool.begin().await.expect("begin");
        let accepted = insert_batch(&mut tx, events, now).await.expect("append");
        tx.commit().await.expect("commit");
        accepted
    }

    /// Every decision of a batch, against the batch itself and what earlier commits stored.
    #[tokio::test]
    async fn a_batch_is_deduplicated_by_event_id_and_by_crm_record() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO refused (source, record_id, reason, field, refused_at)
             VALUES ('hubspot', '9', 'missing_field', 'email', 1)",
        )
        .execute(&pool)
        .await
        .expect("refusal");
        let (old, queued) = (
            event(Some("old"), "a@x.io"),
            of_record(Some("1:5:created"), CrmRecord::unseen("5")),
        );
        let [
            Accepted::Stored { id: old_id },
            Accepted::Stored { id: queued_id },
        ] = append(&pool, &[&old, &queued], 1).await[..]
        else {
            panic!("first batch");
        };

        let plain = event(None, "b@x.io");
        let webhook = of_record(Some("1:6:created"), CrmRecord::unseen("6"));
        let listed = of_record(None, CrmRecord::unseen("6"));
        let again = event(Some("old"), "a@x.io");
        let known = of_record(None, CrmRecord::unseen("5"));
        let unrefused = of_record(Some("1:7:updated"), CrmRecord::refused("7"));
        let refused = of_record(Some("1:9:updated"), CrmRecord::refused("9"));
        let repeated = event(Some("new"), "c@x.io");
        let batch = [
            &plain, &webhook, &listed, &again, &known, &unrefused, &refused, &repeated, &repeated,
        ];
        let accepted = append(&pool, &batch, 2).await;
        let id = |n: usize| accepted[n].id().expect("a row");
        assert_eq!(
            accepted,
            [
                Accepted::Stored { id: id(0) },
                Accepted::Stored { id: id(1) },
                // The same record earlier in the batch.
                Accepted::Duplicate { id: id(1) },
                // An event id stored by an earlier commit.
                Accepted::Duplicate { id: old_id },
                // A record queued by an earlier commit, never refused since.
                Accepted::Duplicate { id: queued_id },
                // An update of a record never refused.
                Accepted::NotNeeded,
                // An update of a refused record: queued now.
                Accepted::Stored { id: id(6) },
                Accepted::Stored { id: id(7) },
                Accepted::Duplicate { id: id(7) },
            ]
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(rows, 6);
        let resolved: Option<i64> =
            sqlx::query_scalar("SELECT resolved_outbox_id FROM refused WHERE record_id = '9'")
                .fetch_one(&pool)
                .await
                .expect("refusal");
        assert_eq!(resolved, Some(id(6)));

        // Once resolved, the record is queued: a later update is a duplicate of its row.
        let later = of_record(Some("1:9:updated:2"), CrmRecord::refused("9"));
        assert_eq!(
            append(&pool, &[&later], 3).await,
            [Accepted::Duplicate { id: id(6) }]
        );
    }
}
