//! The admin list, retry and cancel (one row or in bulk), and the audit trail.

use sqlx::PgPool;
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::ops::DeliveryView;

use super::unported;

pub(super) async fn list_deliveries(_pool: &PgPool, _filter: &DeliveryFilter, _after: Option<Cursor>, _limit: usize) -> anyhow::Result<Vec<DeliveryView>> {
    Err(unported("admin::list_deliveries"))
}

pub(super) async fn change_delivery(_pool: &PgPool, _id: i64, _action: RowAction, _note: &AuditNote) -> anyhow::Result<Moved> {
    Err(unported("admin::change_delivery"))
}

pub(super) async fn change_deliveries(_pool: &PgPool, _filter: &DeliveryFilter, _action: RowAction, _limit: usize, _note: &AuditNote) -> anyhow::Result<(u64, bool)> {
    Err(unported("admin::change_deliveries"))
}

pub(super) async fn audit_log(_pool: &PgPool, _after: Option<Cursor>, _limit: usize) -> anyhow::Result<Vec<AuditView>> {
    Err(unported("admin::audit_log"))
}
