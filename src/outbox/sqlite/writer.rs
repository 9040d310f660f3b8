//! Group commit: one task owns the write connection and commits every event that arrived while
//! the previous commit was syncing in a single transaction, so N concurrent webhooks cost one fsync.

use std::sync::Arc;

use anyhow::Context;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::{DatabaseFile, append};
use crate::outbox::writer::{Accepted, NewEvent, Queue, StoreError, WriterHandle, queue};
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
        let events: Vec<&NewEvent> = batch.iter().map(|job| &job.event).collect();
        // Once the file is known lost, nothing more is written to it; otherwise the check comes
        // after the commit (one `stat` a batch): committed into a file that was deleted or
        // replaced meanwhile is not stored, so the CRM gets 503 and sends it again.
        let mut results = if file.is_lost() {
            Vec::new()
        } else {
            let _turn = turn.lock().await;
            commit_each_if_needed(&mut conn, &events).await
        };
        if let Err(lost) = file.check() {
            results = events.iter().map(|_| Err(lost.clone().into())).collect();
        }
        if results.iter().any(Result::is_err) {
            queue.commit_failed();
        }
        if results.iter().any(|r| matches!(r, Ok(a) if !a.duplicate)) {
            committed.notify_one();
        }
        for (job, result) in batch.drain(..).zip(results) {
            let reply = result.map_err(|error| {
                tracing::error!(error = %format!("{error:#}"), "Failed to commit a webhook event");
                StoreError::Unavailable
            });
            // The request may have gone away; the event is stored either way.
            let _ = job.reply.send(reply);
        }
    }
    if let Err(error) = sqlx::Connection::close(conn).await {
        tracing::warn!(%error, "Failed to close the outbox writer connection");
    }
}

/// Commits `events` together; if that fails, each alone, so one bad event does not fail its
/// neighbours.
async fn commit_each_if_needed(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Vec<anyhow::Result<Accepted>> {
    match commit(conn, events).await {
        Ok(accepted) => accepted.into_iter().map(Ok).collect(),
        Err(error) if events.len() > 1 => {
            tracing::warn!(error = %format!("{error:#}"), size = events.len(), "Group commit failed; committing events one by one");
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                results.push(commit(conn, &[event]).await.map(|mut a| a.remove(0)));
            }
            results
        }
        Err(error) => vec![Err(error)],
    }
}

/// Writes `events` in one transaction; on error nothing of it is stored.
async fn commit(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> anyhow::Result<Vec<Accepted>> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .context("Failed to begin the outbox transaction")?;
    let written = match append::insert_batch(conn, events, now_ms()).await {
        Ok(accepted) => sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map(|_| accepted)
            .context("Failed to commit the outbox transaction"),
        Err(error) => Err(error),
    };
    if written.is_err() {
        // Leave no transaction open for the next batch; after a failed COMMIT SQLite may already
        // have rolled back, so an error here is expected and harmless.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    written
}
