//! Group commit: one task owns the write connection and commits every event that arrived while
//! the previous commit was syncing in a single transaction, so N concurrent webhooks cost one fsync.

use std::sync::Arc;

use anyhow::Context;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Notify, mpsc, oneshot};

use super::{append, now_ms};

/// An event to append, already validated.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: &'static str,
    pub event_id: Option<String>,
    /// Normalised email (the guest's identity).
    pub email: String,
    /// Guest fields as JSON.
    pub payload: String,
}

/// The outcome of a committed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: i64,
    /// True when the event id was already stored: nothing new was written.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The writer has more waiting than it is allowed to queue.
    #[error("the outbox writer queue is full")]
    Overloaded,
    /// The commit failed (disk full, database locked, I/O error) or the writer is gone.
    #[error("the outbox could not commit the event")]
    Unavailable,
}

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<Accepted, StoreError>>,
}

/// Cheap to clone; every HTTP worker holds one.
#[derive(Clone)]
pub struct WriterHandle {
    jobs: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Appends `event` and returns once its transaction is committed (durable), or an error
    /// meaning nothing is known to be stored and the sender should retry.
    pub async fn append(&self, event: NewEvent) -> Result<Accepted, StoreError> {
        let (reply, receipt) = oneshot::channel();
        self.jobs
            .try_send(Job { event, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable,
            })?;
        receipt.await.map_err(|_| StoreError::Unavailable)?
    }
}

/// The running writer; [`WriterTask::shutdown`] commits what is queued, then stops.
pub struct WriterTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl WriterTask {
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "The outbox writer task failed");
        }
    }
}

/// Starts the writer; `committed` is notified after every commit that stored something new.
pub fn spawn(
    conn: SqliteConnection,
    max_batch: usize,
    queue_capacity: usize,
    committed: Arc<Notify>,
) -> (WriterHandle, WriterTask) {
    let (jobs, rx) = mpsc::channel(queue_capacity);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(conn, rx, stopped, max_batch, committed));
    (WriterHandle { jobs }, WriterTask { stop, task })
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
    committed: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut stopping = false;
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, max_batch) => if received == 0 { break },
            _ = &mut stop, if !stopping => {
                // Refuse new events (their senders get 503) but still commit the queued ones.
                stopping = true;
                rx.close();
                continue;
            }
        }
        let events: Vec<&NewEvent> = batch.iter().map(|job| &job.event).collect();
        let results = match commit(&mut conn, &events).await {
            Ok(accepted) => accepted.into_iter().map(Ok).collect(),
            // One bad event must not fail its neighbours: retry each alone.
            Err(error) if events.len() > 1 => {
                tracing::warn!(error = %format!("{error:#}"), size = events.len(), "Group commit failed; committing events one by one");
                let mut results = Vec::with_capacity(events.len());
                for event in &events {
                    results.push(commit(&mut conn, &[event]).await.map(|mut a| a.remove(0)));
                }
                results
            }
            Err(error) => vec![Err(error)],
        };
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
