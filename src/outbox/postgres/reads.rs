//! What /status, a delivery's page and a ledger look-up read.

use sqlx::PgPool;
use crate::ops::{AttemptView, DeliveryView, LedgerEntry};
use crate::status::Snapshot;

use super::unported;

pub(super) async fn snapshot(_pool: &PgPool) -> anyhow::Result<Snapshot> {
    Err(unported("reads::snapshot"))
}

pub(super) async fn delivery(_pool: &PgPool, _id: i64) -> anyhow::Result<Option<(DeliveryView, Vec<AttemptView>)>> {
    Err(unported("reads::delivery"))
}

pub(super) async fn ledger_entry(_pool: &PgPool, _org_id: &str, _email: &str) -> anyhow::Result<Option<LedgerEntry>> {
    Err(unported("reads::ledger_entry"))
}
