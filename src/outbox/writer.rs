//! Ingest's way into storage: a queue of validated events, and of the CRM items refused, that one
//! writer task commits in groups through its backend's [`Commit`], answering each sender once its
//! entry is durable: N concurrent webhooks cost one commit (one fsync).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::time::now_ms;

/// After a failed commit, how long readiness stays false even if a small probe write works:
/// a full disk may still take one page and refuse a batch.
const FAILED_COMMIT_UNREADY_MS: i64 = 10_000;

/// An event to append, already validated.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: &'static str,
    pub event_id: Option<String>,
    /// Normalised email (the guest's identity); `None` until the CRM record is read.
    pub email: Option<String>,
    /// The CRM record the event names while its email is not known, e.g. `hubspot:62515:5012`.
    pub crm_record: Option<String>,
    /// The [`StoredEvent`](crate::domain::event::StoredEvent), encoded.
    pub payload: String,
    /// The CRM record the event stands for, when it names one: the row is queued only if
    /// [`CrmRecord::only_if`] holds, and the record is remembered with it.
    pub record: Option<CrmRecord>,
}

/// A CRM's own record (Pipedrive person id, HubSpot contact id, Salesforce Contact Id): what
/// keys a contact across webhooks, reconciles and updates, so it reaches Tallyfy once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRecord {
    pub id: String,
    pub only_if: OnlyIf,
}

/// When an event of a CRM record is worth a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlyIf {
    /// A creation (webhook or reconcile): unless the record was queued before and not refused
    /// since (then it is a [`Accepted::Duplicate`] of that row).
    Unseen,
    /// An update that now carries an email: only if the record was refused and no row has
    /// queued it since (otherwise [`Accepted::NotNeeded`]).
    Refused,
}

impl CrmRecord {
    pub fn unseen(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            only_if: OnlyIf::Unseen,
        }
    }

    pub fn refused(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            only_if: OnlyIf::Refused,
        }
    }
}

/// A CRM item the bridge did not queue, to keep: where to find it in the CRM and why, never its
/// contact data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefusal {
    pub source: &'static str,
    /// The CRM's event id, when it sent one: a repeated delivery is kept once.
    pub event_id: Option<String>,
    /// The CRM's own record (Pipedrive person id, HubSpot objectId, Salesforce sObject Id).
    pub record_id: Option<String>,
    /// The delivery it came in, where the CRM names one (Salesforce's Notification Id).
    pub notification_id: Option<String>,
    /// The problem's code: `missing_field`, `invalid_email`, `too_many`, ...
    pub reason: &'static str,
    /// The field at fault, in the CRM's own naming.
    pub field: String,
}

/// The outcome of a committed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A new row.
    Stored { id: i64 },
    /// The event id, or the CRM record, was already stored in row `id`: nothing new written.
    Duplicate { id: i64 },
    /// An update of a CRM record that was never refused: nothing to do.
    NotNeeded,
}

impl Accepted {
    /// The row that holds the event, if one does.
    pub fn id(self) -> Option<i64> {
        match self {
            Self::Stored { id } | Self::Duplicate { id } => Some(id),
            Self::NotNeeded => None,
        }
    }
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

/// Cheap to clone; every HTTP worker holds one.
#[derive(Clone)]
pub struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    /// When a commit last failed (ms), 0 if never.
    last_failure_at: Arc<AtomicI64>,
}

impl WriterHandle {
    /// Appends `event` and returns once its transaction is committed (durable), or an error
    /// meaning nothing is known to be stored and the sender should retry.
    pub async fn append(&self, event: NewEvent) -> Result<Accepted, StoreError> {
        let (reply, receipt) = oneshot::channel();
        self.submit(Job::Event { event, reply })?;
        receipt.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Keeps `refusal` (in the same commits as events) and returns once it is durable; the same
    /// error as [`append`](Self::append) when it is not known to be stored.
    pub async fn refuse(&self, refusal: NewRefusal) -> Result<(), StoreError> {
        let (reply, receipt) = oneshot::channel();
        self.submit(Job::Refusal { refusal, reply })?;
        receipt.await.map_err(|_| StoreError::Unavailable)?
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable,
        })
    }

    /// Whether a commit of events failed in the last few seconds.
    pub fn recently_failed(&self) -> bool {
        let at = self.last_failure_at.load(Ordering::Relaxed);
        at > 0 && now_ms() - at < FAILED_COMMIT_UNREADY_MS
    }
}

/// One entry waiting for its commit, with the sender waiting for the answer.
pub(crate) enum Job {
    Event {
        event: NewEvent,
        reply: oneshot::Sender<Result<Accepted, StoreError>>,
    },
    Refusal {
        refusal: NewRefusal,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Job {
    pub(crate) fn event(&self) -> Option<&NewEvent> {
        match self {
            Job::Event { event, .. } => Some(event),
            Job::Refusal { .. } => None,
        }
    }

    pub(crate) fn refusal(&self) -> Option<&NewRefusal> {
        match self {
            Job::Refusal { refusal, .. } => Some(refusal),
            Job::Event { .. } => None,
        }
    }
}

/// The writer task's end of the queue.
pub(crate) struct Queue {
    pub(crate) jobs: mpsc::Receiver<Job>,
    failures: Arc<AtomicI64>,
}

impl Queue {
    /// Makes readiness fail for a while: a commit of events failed now.
    pub(crate) fn commit_failed(&self) {
        self.failures.store(now_ms(), Ordering::Relaxed);
    }
}

/// A queue holding at most `capacity` entries: the handle for ingest, the other end for the
/// backend's writer task.
pub(crate) fn queue(capacity: usize) -> (WriterHandle, Queue) {
    let (jobs, rx) = mpsc::channel(capacity);
    let failures = Arc::new(AtomicI64::new(0));
    let handle = WriterHandle {
        jobs,
        last_failure_at: failures.clone(),
    };
    (handle, Queue { jobs: rx, failures })
}

/// A backend's side of the group commit.
#[async_trait::async_trait]
pub trait Commit: Send + 'static {
    /// Writes `events` and `refusals` in one transaction, or nothing of them.
    async fn commit(
        &mut self,
        events: &[&NewEvent],
        refusals: &[&NewRefusal],
    ) -> anyhow::Result<Vec<Accepted>>;

    /// Storage is known unusable already (SQLite: its file was lost): nothing more is written.
    fn known_lost(&self) -> bool {
        false
    }

    /// Checked after every commit: an error means what was just committed is not stored after
    /// all (SQLite: the file was deleted or replaced meanwhile), so every sender gets 503.
    fn check_after(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called once the queue is drained at shutdown.
    async fn close(self);
}

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

/// What the writer works with besides its backend and its queue.
pub struct WriterSetup {
    pub max_batch: usize,
    pub queue_capacity: usize,
    /// Notified after every commit that stored something new.
    pub committed: Arc<Notify>,
    /// Counts each batch and what became of its events.
    pub metrics: crate::metrics::Metrics,
}

/// Starts the writer over `backend`.
pub fn spawn(setup: WriterSetup, backend: impl Commit) -> (WriterHandle, WriterTask) {
    let (handle, queue) = queue(setup.queue_capacity);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(setup, backend, queue, stop.clone()));
    (handle, WriterTask { stop, task })
}

async fn run(
    setup: WriterSetup,
    mut backend: impl Commit,
    mut queue: Queue,
    stop: CancellationToken,
) {
    let WriterSetup {
        max_batch,
        committed,
        metrics,
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
        let mut written = if backend.known_lost() {
            Written::default()
        } else {
            commit_each_if_needed(&mut backend, &events, &refusals).await
        };
        if let Err(lost) = backend.check_after() {
            let lost = format!("{lost:#}");
            written = Written {
                events: events
                    .iter()
                    .map(|_| Err(anyhow::anyhow!(lost.clone())))
                    .collect(),
                refusals: refusals
                    .iter()
                    .map(|_| Err(anyhow::anyhow!(lost.clone())))
                    .collect(),
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
    backend.close().await;
}

/// What one commit gave each event and each refusal of the batch, in their order.
#[derive(Default)]
pub(crate) struct Written {
    pub(crate) events: Vec<anyhow::Result<Accepted>>,
    pub(crate) refusals: Vec<anyhow::Result<()>>,
}

impl Written {
    fn any_failed(&self) -> bool {
        self.events.iter().any(Result::is_err) || self.refusals.iter().any(Result::is_err)
    }
}

/// Commits `events` and `refusals` together; if that fails, each alone, so one bad entry does
/// not fail its neighbours.
pub(crate) async fn commit_each_if_needed(
    backend: &mut impl Commit,
    events: &[&NewEvent],
    refusals: &[&NewRefusal],
) -> Written {
    match backend.commit(events, refusals).await {
        Ok(accepted) => Written {
            events: accepted.into_iter().map(Ok).collect(),
            refusals: refusals.iter().map(|_| Ok(())).collect(),
        },
        Err(error) if events.len() + refusals.len() > 1 => {
            tracing::warn!(error = %format!("{error:#}"), size = events.len() + refusals.len(), "Group commit failed; committing entries one by one");
            let mut written = Written::default();
            for event in events {
                let result = backend.commit(&[event], &[]).await;
                written.events.push(result.map(|mut a| a.remove(0)));
            }
            for refusal in refusals {
                let result = backend.commit(&[], &[refusal]).await;
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
