//! Everything the bridge keeps — events, the guest ledger, attempt logs, the worker's gate —
//! behind one interface, [`Store`], that the delivery worker and the operator endpoints use, and
//! a [`writer`] queue through which ingest appends. SQLite is the embedded default ([`sqlite`]);
//! PostgreSQL ([`postgres`]) lets several bridges share one database. [`open`] picks one.

mod batch;
pub mod open;
pub mod postgres;
mod row_change;
pub mod sqlite;
pub mod writer;

use std::collections::HashMap;

use crate::configuration::RetentionSettings;
use crate::console::{HourCounts, StoredSession};
use crate::domain::outcome::Outcome;
use crate::domain::pacing::{Budget, PacingLimit};
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::reconcile::{ReconcileState, RunReport};
use crate::status::Snapshot;

pub use writer::{Accepted, CrmRecord, NewEvent, NewRefusal, OnlyIf, StoreError, WriterHandle};

/// Where a row is in its life (see docs/DESIGN: queued → in_flight → delivered, or back to
/// retrying, or failed; an operator may retry a failed row or cancel one nobody wants delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    Queued,
    InFlight,
    Retrying,
    Delivered,
    Failed,
    Cancelled,
}

impl RowState {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::InFlight,
        Self::Retrying,
        Self::Delivered,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name stored and shown (`in_flight`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InFlight => "in_flight",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for RowState {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(())
    }
}

/// A row the caller now owns until its lease ends.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    /// `None` while the row names a CRM record whose email is not read yet.
    pub email: Option<String>,
    /// The [`StoredEvent`](crate::domain::event::StoredEvent), encoded.
    pub payload: String,
    /// This attempt's number (already persisted): above 1 means an earlier attempt may have
    /// reached Tallyfy. It is also the fencing token for recording the result.
    pub attempts: i64,
    pub received_at: i64,
    /// `attempts` when an operator last retried the row (0 if never): the retry budget counts
    /// only the attempts since.
    pub attempts_before_retry: i64,
    /// When an operator last retried the row: the budget's age counts from here.
    pub retried_at: Option<i64>,
    /// The guest id the ledger held for this email when the row was claimed: delivered without
    /// a call.
    pub known_guest_id: Option<String>,
    /// Another row of this email was attempted and not delivered (in flight, retrying, failed
    /// or cancelled, queued again by an operator's retry, or pruned): its create may have
    /// reached Tallyfy, so this attempt looks the guest up before creating it.
    pub attempted_before: bool,
}

impl Claimed {
    /// Attempts spent from the current retry budget, this one included.
    pub fn budget_attempts(&self) -> i64 {
        self.attempts - self.attempts_before_retry
    }

    /// When the current retry budget started: reception, or the operator's last retry.
    pub fn budget_since(&self) -> i64 {
        self.retried_at.unwrap_or(self.received_at)
    }
}

/// When an attempt ran, for its line in the attempt log.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub started_at: i64,
    pub duration_ms: i64,
}

/// One attempt's outcome, to record with its row.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub row: Claimed,
    pub outcome: Outcome,
    pub log: AttemptLog,
    pub now: i64,
}

/// What stops the worker from claiming: credentials refused, or Tallyfy's rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Gate {
    pub paused_reason: Option<String>,
    pub rate_limited_until: Option<i64>,
}

/// One bridge process among those sharing a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Replica {
    /// `host:pid`.
    pub replica_id: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

/// What the bridge knows of one CRM record (see [`CrmRecord`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordState {
    /// The latest row queued for it.
    pub outbox_id: Option<i64>,
    /// A refusal of it that no row has resolved yet.
    pub open_refusal: bool,
}

/// The storage interface. Times are ms since the epoch; `org_id` scopes the guest ledger (a
/// guest id of one organisation means nothing in another).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Why storage cannot be used at all, known without asking it (SQLite: the database file
    /// was deleted or replaced under the bridge). Nothing is claimed or acknowledged then.
    fn problem(&self) -> Option<String>;

    /// Migrations applied and a write commits now.
    async fn check_ready(&self) -> anyhow::Result<()>;

    /// Housekeeping off the hot path (SQLite: copy the WAL into the file); `finishing` at
    /// shutdown.
    async fn maintain(&self, finishing: bool) -> anyhow::Result<()>;

    /// Closes the pool at shutdown, once nothing uses it any more.
    async fn close(&self);

    /// `sqlite` or `postgres`, for `/status`.
    fn backend(&self) -> &'static str;

    /// This process among the [`replicas`](Self::replicas), where the backend has several.
    fn replica_id(&self) -> Option<&str> {
        None
    }

    /// The bridges delivering from this database that sent a heartbeat since `since` (ms),
    /// newest first. SQLite has one bridge per file and lists none.
    async fn replicas(&self, _since: i64) -> anyhow::Result<Vec<Replica>> {
        Ok(Vec::new())
    }

    /// Claims up to `limit` due rows, at most one per email, skipping emails already in flight,
    /// leased until `lease_until`, each with what `org_id`'s ledger knows of its email and
    /// whether the email was attempted before. Rows whose lease expired (their worker died)
    /// are due again.
    async fn claim_due(
        &self,
        org_id: &str,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Claimed>>;

    /// When the next row becomes due (a retry time or a lease end), if any is waiting.
    async fn next_due_at(&self) -> anyhow::Result<Option<i64>>;

    /// Writes attempts' outcomes in one transaction: the delivery gate they change first (a row
    /// given back after a 401 must never be due while delivery does not look paused), then for
    /// each its ledger entry (even if the lease was lost: the guest exists either way; an
    /// existing entry wins and becomes the row's id), its row only if the attempt still owns it
    /// (the returned flags) and its attempt log line. On error nothing is written.
    async fn record(&self, org_id: &str, results: &[AttemptResult]) -> anyhow::Result<Vec<bool>>;

    async fn gate(&self) -> anyhow::Result<Gate>;
    async fn set_paused(&self, reason: Option<&str>) -> anyhow::Result<()>;
    async fn heartbeat(&self, now: i64) -> anyhow::Result<()>;

    /// The figures `/status` shows, at a cost that does not grow with the outbox.
    async fn snapshot(&self) -> anyhow::Result<Snapshot>;
    /// One row as operators see it, with its attempt log.
    async fn delivery(&self, id: i64) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>>;
    async fn ledger_entry(&self, org_id: &str, email: &str) -> anyhow::Result<Option<LedgerEntry>>;

    // Operations: refused
    /// Up to `limit` refused CRM items matching `filter`, newest first by (refused_at, id),
    /// after `after`; index-backed, so a page costs the same however many came before.
    async fn refused(
        &self,
        filter: &RefusedFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<RefusedView>>;

    // Operations: admin
    /// Up to `limit` rows matching `filter` after `after`, newest first by (received_at, id),
    /// one index range per page whatever the outbox holds.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<DeliveryView>>;
    /// An operator's retry or cancel of one row, audited in the same transaction.
    async fn change_delivery(
        &self,
        id: i64,
        action: RowAction,
        note: &AuditNote,
    ) -> anyhow::Result<Moved>;
    /// The same for up to `limit` rows matching `filter` (its state required): how many moved,
    /// and whether more match.
    async fn change_deliveries(
        &self,
        filter: &DeliveryFilter,
        action: RowAction,
        limit: usize,
        note: &AuditNote,
    ) -> anyhow::Result<(u64, bool)>;
    /// The admin audit trail, newest first by (at, id).
    async fn audit_log(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<AuditView>>;

    // Operations: retention
    /// Deletes what `policy` calls old at `now`: end-state rows with their attempt logs (the
    /// emails of those attempted and not delivered are remembered for
    /// [`Claimed::attempted_before`]), refused items and audit entries, in batches of
    /// `policy.batch_rows`, each its own short transaction, until nothing is old enough. Never
    /// the guest ledger. Records the run for `/status`.
    async fn prune(&self, now: i64, policy: &RetentionSettings) -> anyhow::Result<Pruned>;

    // console: the ops console's chart, bulk confirmation and login sessions
    /// Per hour from the hour of `since` to `until` (every hour, empty ones as 0): events
    /// accepted (by `received_at`) and rows delivered (by when they became delivered);
    /// index-backed, so each hour costs what it holds.
    async fn hourly_activity(&self, since: i64, until: i64) -> anyhow::Result<Vec<HourCounts>>;
    /// How many rows [`Store::change_deliveries`] with the same arguments would move now.
    async fn count_deliveries(
        &self,
        filter: &DeliveryFilter,
        action: RowAction,
        limit: usize,
    ) -> anyhow::Result<u64>;
    /// Stores a console session, deleting expired ones first (as of `now`).
    async fn create_session(&self, session: &StoredSession, now: i64) -> anyhow::Result<()>;
    /// The session whose id hashes to `id_hash`, unless it expired by `now`.
    async fn session(&self, id_hash: &[u8], now: i64) -> anyhow::Result<Option<StoredSession>>;
    async fn delete_session(&self, id_hash: &[u8]) -> anyhow::Result<()>;

    // pacing: Tallyfy's hourly guest-invite cap, org-wide (docs/delivery.md#pacing)
    /// The create budget at `now` under `limit`: what the worker may still claim for.
    async fn create_budget(&self, now: i64, limit: PacingLimit) -> anyhow::Result<Budget>;
    /// Spends one unit for `outbox_id`'s create at `now` if one is left (an atomic "spend if
    /// budget left", never read-then-write): `None`, else when the next may be spent. Called
    /// before the POST: a crash after it wastes a unit, never sends an unbudgeted create.
    async fn spend_create(
        &self,
        now: i64,
        limit: PacingLimit,
        outbox_id: i64,
    ) -> anyhow::Result<Option<i64>>;
    /// Records the limit the worker runs with, for `/status` of every process.
    async fn announce_pacing(&self, limit: PacingLimit) -> anyhow::Result<()>;

    // reconcile: CRM records and each source's runs (crate::reconcile)
    /// What is known of each of `source`'s records in `ids` (absent: never seen).
    async fn record_states(
        &self,
        source: &str,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, RecordState>>;
    /// `source`'s watermark and last run (all empty before the first).
    async fn reconcile_state(&self, source: &str) -> anyhow::Result<ReconcileState>;
    /// Every source that has run or been checked, by name.
    async fn reconcile_states(&self) -> anyhow::Result<Vec<ReconcileState>>;
    /// A run of `source` started at `at`.
    async fn start_reconcile(&self, source: &str, at: i64) -> anyhow::Result<()>;
    /// Records a finished run in one transaction: its audit entry, and (unless a dry run) its
    /// counts and result, and `watermark` when it moves.
    async fn finish_reconcile(
        &self,
        report: &RunReport,
        watermark: Option<i64>,
        note: &AuditNote,
    ) -> anyhow::Result<()>;
    /// What a check of `source`'s webhook subscription found at `at`.
    async fn record_subscription(
        &self,
        source: &str,
        state: &str,
        detail: &str,
        at: i64,
    ) -> anyhow::Result<()>;
}

/// What one prune deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Outbox rows.
    pub outbox: u64,
    /// Their attempt log lines.
    pub attempts: u64,
    /// Emails newly remembered as attempted (see [`Claimed::attempted_before`]).
    pub attempted_emails: u64,
    pub refused: u64,
    pub audit: u64,
    /// Transactions that deleted something.
    pub batches: u64,
    /// When the prune was large enough to truncate the WAL: the largest the WAL file was before
    /// a truncation, and its bytes after the last one.
    pub wal_truncated: Option<(u64, u64)>,
}

impl Pruned {
    /// Rows deleted, attempt log lines not counted: what `/status` shows as `last_prune_rows`.
    pub fn rows(&self) -> u64 {
        self.outbox + self.refused + self.audit
    }
}
