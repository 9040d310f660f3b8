//! The SQLite side of the group commit ([`crate::outbox::writer`]): one connection of its own,
//! a `BEGIN IMMEDIATE` transaction per batch, and the file checked after every commit.

use std::sync::Arc;

use anyhow::Context;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::Mutex;

use super::{DatabaseFile, append, refused};
use crate::outbox::writer::{Accepted, Commit, NewEvent, NewRefusal};
use crate::time::now_ms;

/// The writer's connection and what it checks around each commit.
pub struct SqliteCommit {
    pub conn: SqliteConnection,
    /// Checked around every commit: no acknowledgement for a file that is gone.
    pub file: Arc<DatabaseFile>,
    /// Held for each commit, so retention's batches take turns with it here rather than in
    /// SQLite's busy handler (see `SqliteStore::write_turn`).
    pub turn: Arc<Mutex<()>>,
}

#[async_trait::async_trait]
impl Commit for SqliteCommit {
    async fn commit(
        &mut self,
        events: &[&NewEvent],
        refusals: &[&NewRefusal],
    ) -> anyhow::Result<Vec<Accepted>> {
        let _turn = self.turn.lock().await;
        commit(&mut self.conn, events, refusals).await
    }

    // Once the file is known lost, nothing more is written to it; otherwise the check comes
    // after the commit (one `stat` a batch): committed into a file that was deleted or replaced
    // meanwhile is not stored, so the CRM gets 503 and sends it again.
    fn known_lost(&self) -> bool {
        self.file.is_lost()
    }

    fn check_after(&self) -> anyhow::Result<()> {
        Ok(self.file.check()?)
    }

    async fn close(self) {
        if let Err(error) = sqlx::Connection::close(self.conn).await {
            tracing::warn!(%error, "Failed to close the outbox writer connection");
        }
    }
}

/// Writes `events` and `refusals` in one transaction; on error nothing of it is stored.
async fn commit(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    refusals: &[&NewRefusal],
) -> anyhow::Result<Vec<Accepted>> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .context("Failed to begin the outbox transaction")?;
    let now = now_ms();
    let written = async {
        let accepted = if events.is_empty() {
            Vec::new()
        } else {
            append::insert_batch(conn, events, now).await?
        };
        if !refusals.is_empty() {
            refused::insert_batch(conn, refusals, now).await?;
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .context("Failed to commit the outbox transaction")?;
        Ok(accepted)
    }
    .await;
    if written.is_err() {
        // Leave no transaction open for the next batch; after a failed COMMIT SQLite may already
        // have rolled back, so an error here is expected and harmless.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    written
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;
    use crate::outbox::writer::{CrmRecord, commit_each_if_needed};

    /// A committer over an in-memory database, whose "file" is this test's own temp file.
    async fn memory() -> (SqliteCommit, tempfile::NamedTempFile) {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("memory db");
        super::super::MIGRATOR
            .run(&mut conn)
            .await
            .expect("migrations");
        let marker = tempfile::NamedTempFile::new().expect("temp file");
        let file = Arc::new(DatabaseFile::open(marker.path()).expect("file"));
        let commit = SqliteCommit {
            conn,
            file,
            turn: Arc::default(),
        };
        (commit, marker)
    }

    fn refusal(event_id: &str) -> NewRefusal {
        NewRefusal {
            source: "pipedrive",
            event_id: Some(event_id.into()),
            record_id: Some("4711".into()),
            notification_id: None,
            reason: "missing_field",
            field: "current.email".into(),
        }
    }

    fn event(email: Option<&str>) -> NewEvent {
        NewEvent {
            source: "canonical",
            event_id: None,
            email: email.map(str::to_owned),
            crm_record: None,
            record: None,
            payload: "{}".into(),
        }
    }

    async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(conn)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn events_and_refusals_share_a_commit_and_a_bad_entry_fails_only_itself() {
        let (mut backend, _marker) = memory().await;
        // One commit: an event, and a refusal sent twice (the copy keeps nothing more).
        let (good, kept) = (event(Some("a@x.io")), refusal("1:person:4711:created"));
        let written = commit_each_if_needed(&mut backend, &[&good], &[&kept, &kept]).await;
        assert!(written.events.iter().all(Result::is_ok));
        assert_eq!(written.refusals.len(), 2);
        assert!(written.refusals.iter().all(Result::is_ok));
        assert_eq!(count(&mut backend.conn, "outbox").await, 1);
        assert_eq!(count(&mut backend.conn, "refused").await, 1);

        // A row with neither email nor CRM record breaks the table's CHECK: the batch rolls
        // back, then each entry is committed alone and only the bad one fails.
        let bad = event(None);
        let other = refusal("1:person:4712:created");
        let written = commit_each_if_needed(&mut backend, &[&bad, &good], &[&other]).await;
        assert!(written.events[0].is_err());
        assert!(written.events[1].is_ok());
        assert!(written.refusals[0].is_ok());
        assert_eq!(count(&mut backend.conn, "outbox").await, 2);
        assert_eq!(count(&mut backend.conn, "refused").await, 2);

        // One commit is all or nothing: a refusal sharing it with the bad event is not kept.
        let third = refusal("1:person:4713:created");
        assert!(commit(&mut backend.conn, &[&bad], &[&third]).await.is_err());
        assert_eq!(count(&mut backend.conn, "refused").await, 2);
        assert!(commit(&mut backend.conn, &[], &[&third]).await.is_ok());
        assert_eq!(count(&mut backend.conn, "refused").await, 3);
    }

    /// Events of every kind, in fives: with an event id (the 3rd repeats the 1st's), without
    /// one, and of a CRM record (the 5th repeats the 4th's record).
    fn mixed(batch: usize, size: usize) -> Vec<NewEvent> {
        (0..size)
            .map(|i| {
                let mut event = event(Some(&format!("{batch}-{i}@x.io")));
                match i % 5 {
                    0 | 2 => event.event_id = Some(format!("{batch}-{}", i - i % 5)),
                    3 | 4 => {
                        event.source = "pipedrive";
                        event.event_id = Some(format!("{batch}-{i}"));
                        event.record = Some(CrmRecord::unseen(format!("{batch}-{}", i - i % 5)));
                    }
                    _ => {}
                }
                event
            })
            .collect()
    }

    /// A multi-row statement's text depends on its row count, and sqlx keeps every text it
    /// prepares: batches go in as power-of-two runs, so all batch sizes up to 70 prepare 7
    /// texts per statement (outbox rows, CRM records' states and rows, refusals), not 70.
    #[tokio::test]
    async fn batches_of_any_size_reuse_a_few_prepared_statements() {
        let (mut backend, _marker) = memory().await;
        for size in 1..=70 {
            let events = mixed(size, size);
            let refusals: Vec<NewRefusal> =
                (0..size).map(|i| refusal(&format!("{size}:{i}"))).collect();
            let events: Vec<&NewEvent> = events.iter().collect();
            let refusals: Vec<&NewRefusal> = refusals.iter().collect();
            commit(&mut backend.conn, &events, &refusals)
                .await
                .expect("commit");
        }
        // 4 statements × 7 powers of two, and BEGIN IMMEDIATE and COMMIT.
        let prepared = backend.conn.cached_statements_size();
        assert!(prepared <= 4 * 7 + 2, "{prepared} statements prepared");
    }

    /// Across runs a batch is still one: a repeated event id or CRM record in a later run is
    /// answered with the earlier run's row, and rows without an id get their own, in order.
    #[tokio::test]
    async fn a_batch_split_into_runs_answers_each_event_as_one_statement_would() {
        let (mut backend, _marker) = memory().await;
        let mut events = mixed(0, 600);
        // The 597th, in the last run, repeats the 1st's event id.
        events[596].event_id = Some("0-0".into());
        let events: Vec<&NewEvent> = events.iter().collect();

        let accepted = commit(&mut backend.conn, &events, &[])
            .await
            .expect("commit");

        for (i, answer) in accepted.iter().enumerate() {
            let same_as = match i % 5 {
                _ if i == 596 => Some(0),
                2 => Some(i - 2),
                4 => Some(i - 1),
                _ => None,
            };
            match same_as {
                Some(first) => {
                    let id = accepted[first].id().expect("stored");
                    assert_eq!(*answer, Accepted::Duplicate { id }, "event {i}");
                }
                None => assert!(
                    matches!(answer, Accepted::Stored { .. }),
                    "event {i}: {answer:?}"
                ),
            }
        }
        let stored = accepted
            .iter()
            .filter(|a| matches!(a, Accepted::Stored { .. }))
            .count() as i64;
        assert_eq!(count(&mut backend.conn, "outbox").await, stored);
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT source, email FROM outbox ORDER BY id")
                .fetch_all(&mut backend.conn)
                .await
                .expect("rows");
        let expected: Vec<(String, Option<String>)> = events
            .iter()
            .zip(&accepted)
            .filter(|(_, a)| matches!(a, Accepted::Stored { .. }))
            .map(|(e, _)| (e.source.to_owned(), e.email.clone()))
            .collect();
        assert_eq!(
            rows, expected,
            "rows stored once each, in the batch's order"
        );
    }
}
