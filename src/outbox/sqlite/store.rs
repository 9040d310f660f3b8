//! [`SqliteStore`]: the [`Store`] interface over one SQLite file, refusing to work on a file that
//! was deleted or replaced under the bridge (see [`identity`](super::identity)).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sqlx::SqlitePool;
use tokio::sync::Mutex;

use super::{
    DatabaseFile, admin, checkpoint, claim, console, pacing, prune, reads, reconcile, refused,
    results, worker_state,
};
use crate::configuration::{DatabaseSettings, RetentionSettings};
use crate::console::{HourCounts, StoredSession};
use crate::domain::pacing::{Budget, PacingLimit};
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::outbox::{AttemptResult, Claimed, Gate, Pruned, RecordState, Store};
use crate::reconcile::{ReconcileState, RunReport};
use crate::status::Snapshot;

/// The shared pool and the file it was opened on.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    file: Arc<DatabaseFile>,
    /// Taken by the ingest writer for each group commit, by the delivery worker's claims,
    /// results and spends, by each prune batch, and by the checkpoint's last pass (see
    /// [`Self::write_turn`]).
    write_turn: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens the database for serving: migrated first when `migrate`, refused unless ready (see
    /// [`Store::check_ready`]), and its file's identity recorded.
    pub async fn open(settings: &DatabaseSettings, migrate: bool) -> anyhow::Result<Self> {
        let pool = super::open_pool(settings).await?;
        if migrate {
            super::migrate(&pool).await?;
        }
        super::check_ready(&pool).await.context(
            "The database is not ready: not migrated (run `tallyfy-bridge migrate`), read-only for this user, or its disk is full",
        )?;
        super::identity::adopt(&pool, &settings.path).await?;
        let file = Arc::new(DatabaseFile::open(&settings.path)?);
        Ok(Self {
            pool,
            file,
            write_turn: Arc::default(),
        })
    }

    /// The pool, for the backend's own tasks and for tests that look at rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The turn the ingest writer, the delivery worker, retention's batches and the WAL
    /// checkpoint's last pass take (first come, first served) to write: they alternate instead of polling SQLite's lock, whose
    /// busy handler sleeps longer the longer it waits and leaves the lock idle meanwhile. Under
    /// a steady webhook load the group commits held the lock so often that the worker's claims
    /// and results waited out those sleeps: delivery fell to ~150 guests/s with ingest at
    /// 1,000 events/s (issue 18's soak). Other writes are rare and keep relying on the busy
    /// timeout.
    pub fn write_turn(&self) -> Arc<Mutex<()>> {
        self.write_turn.clone()
    }

    /// The file as opened, for the writer's checks around each commit.
    pub fn file(&self) -> Arc<DatabaseFile> {
        self.file.clone()
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn problem(&self) -> Option<String> {
        self.file.check().err().map(|lost| lost.to_string())
    }

    async fn check_ready(&self) -> anyhow::Result<()> {
        self.file.check()?;
        super::check_ready(&self.pool).await
    }

    async fn maintain(&self, finishing: bool) -> anyhow::Result<()> {
        if finishing {
            checkpoint::empty_wal(&self.pool).await
        } else {
            checkpoint::copy_wal(&self.pool, &self.write_turn).await
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn claim_due(
        &self,
        org_id: &str,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let _turn = self.write_turn.lock().await;
        claim::claim_due(&self.pool, org_id, now, limit, lease_until).await
    }

    async fn next_due_at(&self) -> anyhow::Result<Option<i64>> {
        claim::next_due_at(&self.pool).await
    }

    async fn record(&self, org_id: &str, results: &[AttemptResult]) -> anyhow::Result<Vec<bool>> {
        let _turn = self.write_turn.lock().await;
        results::record(&self.pool, org_id, results).await
    }

    async fn gate(&self) -> anyhow::Result<Gate> {
        worker_state::gate(&self.pool).await
    }

    async fn set_paused(&self, reason: Option<&str>) -> anyhow::Result<()> {
        worker_state::set_paused(&self.pool, reason).await
    }

    async fn heartbeat(&self, now: i64) -> anyhow::Result<()> {
        worker_state::heartbeat(&self.pool, now).await
    }

    async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        reads::snapshot(&self.pool).await
    }

    async fn delivery(&self, id: i64) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>> {
        reads::delivery(&self.pool, id).await
    }

    async fn ledger_entry(&self, org_id: &str, email: &str) -> anyhow::Result<Option<LedgerEntry>> {
        reads::ledger_entry(&self.pool, org_id, email).await
    }

    // Operations: refused
    async fn refused(
        &self,
        filter: &RefusedFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<RefusedView>> {
        refused::list(&self.pool, filter, after, limit).await
    }

    // Operations: admin
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<DeliveryView>> {
        admin::list_deliveries(&self.pool, filter, after, limit).await
    }

    async fn change_delivery(
        &self,
        id: i64,
        action: RowAction,
        note: &AuditNote,
    ) -> anyhow::Result<Moved> {
        admin::change_delivery(&self.pool, id, action, note).await
    }

    async fn change_deliveries(
        &self,
        filter: &DeliveryFilter,
        action: RowAction,
        limit: usize,
        note: &AuditNote,
    ) -> anyhow::Result<(u64, bool)> {
        admin::change_deliveries(&self.pool, filter, action, limit, note).await
    }

    async fn audit_log(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<AuditView>> {
        admin::audit_log(&self.pool, after, limit).await
    }

    // Operations: retention
    async fn prune(&self, now: i64, policy: &RetentionSettings) -> anyhow::Result<Pruned> {
        prune::prune(
            &self.pool,
            &self.write_turn,
            &self.file.wal_path(),
            now,
            policy,
        )
        .await
    }

    // console: the ops console's chart, bulk confirmation and login sessions
    async fn hourly_activity(&self, since: i64, until: i64) -> anyhow::Result<Vec<HourCounts>> {
        console::hourly_activity(&self.pool, since, until).await
    }

    async fn count_deliveries(
        &self,
        filter: &DeliveryFilter,
        action: RowAction,
        limit: usize,
    ) -> anyhow::Result<u64> {
        console::count_deliveries(&self.pool, filter, action, limit).await
    }

    async fn create_session(&self, session: &StoredSession, now: i64) -> anyhow::Result<()> {
        console::create_session(&self.pool, session, now).await
    }

    async fn session(&self, id_hash: &[u8], now: i64) -> anyhow::Result<Option<StoredSession>> {
        console::session(&self.pool, id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &[u8]) -> anyhow::Result<()> {
        console::delete_session(&self.pool, id_hash).await
    }

    // pacing
    async fn create_budget(&self, now: i64, limit: PacingLimit) -> anyhow::Result<Budget> {
        pacing::budget(&self.pool, now, limit).await
    }

    async fn spend_create(
        &self,
        now: i64,
        limit: PacingLimit,
        outbox_id: i64,
    ) -> anyhow::Result<Option<i64>> {
        let _turn = self.write_turn.lock().await;
        pacing::spend(&self.pool, now, limit, outbox_id).await
    }

    async fn announce_pacing(&self, limit: PacingLimit) -> anyhow::Result<()> {
        pacing::announce(&self.pool, limit).await
    }

    async fn record_states(
        &self,
        source: &str,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, RecordState>> {
        reconcile::record_states(&self.pool, source, ids).await
    }

    async fn reconcile_state(&self, source: &str) -> anyhow::Result<ReconcileState> {
        reconcile::state(&self.pool, source).await
    }

    async fn reconcile_states(&self) -> anyhow::Result<Vec<ReconcileState>> {
        reconcile::states(&self.pool).await
    }

    async fn start_reconcile(&self, source: &str, at: i64) -> anyhow::Result<()> {
        reconcile::start(&self.pool, source, at).await
    }

    async fn finish_reconcile(
        &self,
        report: &RunReport,
        watermark: Option<i64>,
        note: &AuditNote,
    ) -> anyhow::Result<()> {
        reconcile::finish(&self.pool, report, watermark, note).await
    }

    async fn record_subscription(
        &self,
        source: &str,
        state: &str,
        detail: &str,
        at: i64,
    ) -> anyhow::Result<()> {
        reconcile::subscription(&self.pool, source, state, detail, at).await
    }
}
