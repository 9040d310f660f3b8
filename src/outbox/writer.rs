//! Ingest's way into storage: a queue of validated events, and of the CRM items refused, that the
//! backend's writer task commits in groups, answering each sender once its entry is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{mpsc, oneshot};

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
