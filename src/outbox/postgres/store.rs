//! [`PgStore`]: the [`Store`] interface over a PostgreSQL database that several bridges may share.

use std::collections::HashMap;

use anyhow::Context;
use secrecy::SecretString;
use sqlx::PgPool;

use super::{
    admin, claim, console, pacing, prune, reads, reconcile, refused, results, worker_state,
};
use crate::configuration::{DatabaseSettings, RetentionSettings};
use crate::console::{HourCounts, StoredSession};
use crate::domain::pacing::{Budget, PacingLimit};
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::outbox::{AttemptResult, Claimed, Gate, Pruned, RecordState, Replica, Store};
use crate::reconcile::{ReconcileState, RunReport};
use crate::status::Snapshot;

/// A replica whose heartbeat is older than this is forgotten (a restarted bridge is a new one).
const FORGET_REPLICAS_MS: i64 = 24 * 3_600_000;

/// The shared pool, and which replica this process is among the bridges on the database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    replica: String,
}

impl PgStore {
    /// Opens the database for serving: migrated first when `migrate`, refused unless ready.
    pub async fn open(
        url: &SecretString,
        settings: &DatabaseSettings,
        migrate: bool,
    ) -> anyhow::Result<Self> {
        let pool = super::open_pool(url, settings, settings.max_connections).await?;
        if migrate {
            super::migrate(&pool).await?;
        }
        super::check_ready(&pool).await.context(
            "The database is not ready: not migrated (run `tallyfy-bridge migrate`) or not writable for this user",
        )?;
        Ok(Self {
            pool,
            replica: replica_id(),
        })
    }

    /// The pool, for the backend's own tasks and for tests that look at rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This process among the replicas: its host name and process id.
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

/// `host:pid:tag`: what an operator recognises in `/status` (a container's host name is its
/// id), with a random tag that keeps two stores of one process apart (tests run several).
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "bridge".to_owned());
    let tag = getrandom::u32().unwrap_or_default() & 0xffff;
    format!("{host}:{}:{tag:04x}", std::process::id())
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn problem(&self) -> Option<String> {
        None
    }

    async fn check_ready(&self) -> anyhow::Result<()> {
        super::check_ready(&self.pool).await
    }

    /// Every second (PostgreSQL checkpoints and vacuums by itself): folds the state counters'
    /// deltas into their totals (one bridge at a time), and forgets replicas silent for a day.
    async fn maintain(&self, _finishing: bool) -> anyhow::Result<()> {
        sqlx::query("SELECT compact_counts()")
            .execute(&self.pool)
            .await
            .context("Failed to compact the state counters")?;
        sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
            .bind(crate::time::now_ms() - FORGET_REPLICAS_MS)
            .execute(&self.pool)
            .await
            .context("Failed to forget old replicas")?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn replica_id(&self) -> Option<&str> {
        Some(&self.replica)
    }

    async fn replicas(&self, since: i64) -> anyhow::Result<Vec<Replica>> {
        sqlx::query_as(
            "SELECT replica_id, started_at, heartbeat_at FROM replicas
             WHERE heartbeat_at >= $1 ORDER BY heartbeat_at DESC, replica_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .context("Failed to read the replicas")
    }

    async fn claim_due(
        &self,
        org_id: &str,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        claim::claim_due(&self.pool, org_id, now, limit, lease_until).await
    }

    async fn next_due_at(&self) -> anyhow::Result<Option<i64>> {
        claim::next_due_at(&self.pool).await
    }

    async fn record(&self, org_id: &str, results: &[AttemptResult]) -> anyhow::Result<Vec<bool>> {
        results::record(&self.pool, org_id, results).await
    }

    async fn gate(&self) -> anyhow::Result<Gate> {
        worker_state::gate(&self.pool).await
    }

    async fn set_paused(&self, reason: Option<&str>) -> anyhow::Result<()> {
        worker_state::set_paused(&self.pool, reason).await
    }

    async fn heartbeat(&self, now: i64) -> anyhow::Result<()> {
        worker_state::heartbeat(&self.pool, &self.replica, now).await
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

    async fn refused(
        &self,
        filter: &RefusedFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> anyhow::Result<Vec<RefusedView>> {
        refused::list(&self.pool, filter, after, limit).await
    }

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

    async fn prune(&self, now: i64, policy: &RetentionSettings) -> anyhow::Result<Pruned> {
        prune::prune(&self.pool, now, policy).await
    }

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

    async fn create_budget(&self, now: i64, limit: PacingLimit) -> anyhow::Result<Budget> {
        pacing::budget(&self.pool, now, limit).await
    }

    async fn spend_create(
        &self,
        now: i64,
        limit: PacingLimit,
        outbox_id: i64,
    ) -> anyhow::Result<Option<i64>> {
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
