//! Group commit: one task owns the write connection and commits every event (and refused CRM
//! item) that arrived while the previous commit was syncing in a single transaction, so N
//! concurrent webhooks cost one fsync.

use std::sync::Arc;

use anyhow::Context;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::{DatabaseFile, append, refused};
use crate::outbox::writer::{
    Accepted, Job, NewEvent, NewRefusal, Queue, StoreError, WriterHandle, queue,
};
use crate::time::now_ms;

/// The running writer; [`WriterTask::shutdown`] commits what is queued, then stops.
pub struct WriterTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WriterTask {
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "The outbox writer task failed");
        }
    }
}

/// What the writer works with besides its queue.
pub struct WriterSetup {
    pub conn: SqliteConnection,
    /// Checked around every commit: no acknowledgement for a file that is gone.
    pub file: Arc<DatabaseFile>,
    pub max_batch: usize,
    pub queue_capacity: usize,
    /// Notified after every commit that stored something new.
    pub committed: Arc<Notify>,
    /// Counts each batch and what became of its events.
    pub metrics: crate::metrics::Metrics,
    /// Held for each commit, so retention's batches take turns with it here rather than in
    /// SQLite's busy handler (see `SqliteStore::write_turn`).
    pub turn: Arc<Mutex<()>>,
}

/// Starts the writer.
pub fn spawn(setup: WriterSetup) -> (WriterHandle, WriterTask) {
    let (handle, queue) = queue(setup.queue_capacity);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(setup, queue, stop.clone()));
    (handle, WriterTask { stop, task })
}

async fn run(setup: WriterSetup, mut queue: Queue, stop: CancellationToken) {
    let WriterSetup {
        mut conn,
        file,
        max_batch,
        committed,
        metrics,
        turn,
        ..
    } = setup;
    let mut batch = Vec::with_capacity(max_batch);
    let mut stopping = false;
    loop {
        tokio::select! {
            received = queue.jobs.recv_many(&mut batch, max_batch) => if received == 0 { break },
            () = stop.cancelled(), if !stopping => {
                // Refuse new events (their senders get 503) but still commit the queued ones.
                stopping = true;
                queue.jobs.close();
                continue;
            }
        }
        let events: Vec<&NewEvent> = batch.iter().filter_map(Job::event).collect();
        let refusals: Vec<&NewRefusal> = batch.iter().filter_map(Job::refusal).collect();
        // Once the file is known lost, nothing more is written to it; otherwise the check comes
        // after the commit (one `stat` a batch): committed into a file that was deleted or
        // replaced meanwhile is not stored, so the CRM gets 503 and sends it again.
        let mut written = if file.is_lost() {
            Written::default()
        } else {
            let _turn = turn.lock().await;
            commit_each_if_needed(&mut conn, &events, &refusals).await
        };
        if let Err(lost) = file.check() {
            written = Written {
                events: events.iter().map(|_| Err(lost.clone().into())).collect(),
                refusals: refusals.iter().map(|_| Err(lost.clone().into())).collect(),
            };
        }
        metrics.committed(&written.events);
        if written.any_failed() {
            queue.commit_failed();
        }
        if written
            .events
            .iter()
            .any(|r| matches!(r, Ok(Accepted::Stored { .. })))
        {
            committed.notify_one();
        }
        let unavailable = |error: anyhow::Error| {
            tracing::error!(error = %format!("{error:#}"), "Failed to commit a webhook event");
            StoreError::Unavailable
        };
        let (mut events_written, mut refusals_written) =
            (written.events.into_iter(), written.refusals.into_iter());
        // The request may have gone away; what it sent is stored either way. A missing result
        // drops the reply, which its sender reads as unavailable.
        for job in batch.drain(..) {
            match job {
                Job::Event { reply, .. } => {
                    if let Some(result) = events_written.next() {
                        let _ = reply.send(result.map_err(unavailable));
                    }
                }
                Job::Refusal { reply, .. } => {
                    if let Some(result) = refusals_written.next() {
                        let _ = reply.send(result.map_err(unavailable));
                    }
                }
            }
        }
    }
    if let Err(error) = sqlx::Connection::close(conn).await {
        tracing::warn!(%error, "Failed to close the outbox writer connection");
    }
}

/// What one commit gave each event and each refusal of the batch, in their order.
#[derive(Default)]
struct Written {
    events: Vec<anyhow::Result<Accepted>>,
    refusals: Vec<anyhow::Result<()>>,
}

impl Written {
    fn any_failed(&self) -> bool {
        self.events.iter().any(Result::is_err) || self.refusals.iter().any(Result::is_err)
    }
}

/// Commits `events` and `refusals` together; if that fails, each alone, so one bad entry does
/// not fail its neighbours.
async fn commit_each_if_needed(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    refusals: &[&NewRefusal],
) -> Written {
    match commit(conn, events, refusals).await {
        Ok(accepted) => Written {
            events: accepted.into_iter().map(Ok).collect(),
            refusals: refusals.iter().map(|_| Ok(())).collect(),
        },
        Err(error) if events.len() + refusals.len() > 1 => {
            tracing::warn!(error = %format!("{error:#}"), size = events.len() + refusals.len(), "Group commit failed; committing entries one by one");
            let mut written = Written::default();
            for event in events {
                let result = commit(conn, &[event], &[]).await;
                written.events.push(result.map(|mut a| a.remove(0)));
            }
            for refusal in refusals {
                let result = commit(conn, &[], &[refusal]).await;
                written.refusals.push(result.map(|_| ()));
            }
            written
        }
        // The one entry of the batch.
        Err(error) if refusals.is_empty() => Written {
            events: vec![Err(error)],
            ..Written::default()
        },
        Err(error) => Written {
            refusals: vec![Err(error)],
            ..Written::default()
        },
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

    async fn memory() -> SqliteConnection {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("memory db");
        super::super::MIGRATOR
            .run(&mut conn)
            .await
            .expect("migrations");
        conn
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
        let mut conn = memory().await;
        // One commit: an event, and a refusal sent twice (the copy keeps nothing more).
        let (good, kept) = (event(Some("a@x.io")), refusal("1:person:4711:created"));
        let written = commit_each_if_needed(&mut conn, &[&good], &[&kept, &kept]).await;
        assert!(written.events.iter().all(Result::is_ok));
        assert_eq!(written.refusals.len(), 2);
        assert!(written.refusals.iter().all(Result::is_ok));
        assert_eq!(count(&mut conn, "outbox").await, 1);
        assert_eq!(count(&mut conn, "refused").await, 1);

        // A row with neither email nor CRM record breaks the table's CHECK: the batch rolls
        // back, then each entry is committed alone and only the bad one fails.
        let bad = event(None);
        let other = refusal("1:person:4712:created");
        let written = commit_each_if_needed(&mut conn, &[&bad, &good], &[&other]).await;
        assert!(written.events[0].is_err());
        assert!(written.events[1].is_ok());
        assert!(written.refusals[0].is_ok());
        assert_eq!(count(&mut conn, "outbox").await, 2);
        assert_eq!(count(&mut conn, "refused").await, 2);

        // One commit is all or nothing: a refusal sharing it with the bad event is not kept.
        let third = refusal("1:person:4713:created");
        assert!(commit(&mut conn, &[&bad], &[&third]).await.is_err());
        assert_eq!(count(&mut conn, "refused").await, 2);
        assert!(commit(&mut conn, &[], &[&third]).await.is_ok());
        assert_eq!(count(&mut conn, "refused").await, 3);
    }
}
