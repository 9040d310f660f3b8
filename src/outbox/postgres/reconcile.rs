//! CRM records' states, each source's reconcile watermark and last run, and the webhook subscription check.

use std::collections::HashMap;
use sqlx::PgPool;
use crate::ops::audit::AuditNote;
use crate::outbox::RecordState;
use crate::reconcile::{ReconcileState, RunReport};

use super::unported;

pub(super) async fn record_states(_pool: &PgPool, _source: &str, _ids: &[String]) -> anyhow::Result<HashMap<String, RecordState>> {
    Err(unported("reconcile::record_states"))
}

pub(super) async fn state(_pool: &PgPool, _source: &str) -> anyhow::Result<ReconcileState> {
    Err(unported("reconcile::state"))
}

pub(super) async fn states(_pool: &PgPool) -> anyhow::Result<Vec<ReconcileState>> {
    Err(unported("reconcile::states"))
}

pub(super) async fn start(_pool: &PgPool, _source: &str, _at: i64) -> anyhow::Result<()> {
    Err(unported("reconcile::start"))
}

pub(super) async fn finish(_pool: &PgPool, _report: &RunReport, _watermark: Option<i64>, _note: &AuditNote) -> anyhow::Result<()> {
    Err(unported("reconcile::finish"))
}

pub(super) async fn subscription(_pool: &PgPool, _source: &str, _state: &str, _detail: &str, _at: i64) -> anyhow::Result<()> {
    Err(unported("reconcile::subscription"))
}
