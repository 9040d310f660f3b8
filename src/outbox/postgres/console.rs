//! The console's chart, its bulk confirmation count and its login sessions.

use sqlx::PgPool;
use crate::console::{HourCounts, StoredSession};
use crate::ops::deliveries::{DeliveryFilter, RowAction};

use super::unported;

pub(super) async fn hourly_activity(_pool: &PgPool, _since: i64, _until: i64) -> anyhow::Result<Vec<HourCounts>> {
    Err(unported("console::hourly_activity"))
}

pub(super) async fn count_deliveries(_pool: &PgPool, _filter: &DeliveryFilter, _action: RowAction, _limit: usize) -> anyhow::Result<u64> {
    Err(unported("console::count_deliveries"))
}

pub(super) async fn create_session(_pool: &PgPool, _session: &StoredSession, _now: i64) -> anyhow::Result<()> {
    Err(unported("console::create_session"))
}

pub(super) async fn session(_pool: &PgPool, _id_hash: &[u8], _now: i64) -> anyhow::Result<Option<StoredSession>> {
    Err(unported("console::session"))
}

pub(super) async fn delete_session(_pool: &PgPool, _id_hash: &[u8]) -> anyhow::Result<()> {
    Err(unported("console::delete_session"))
}
