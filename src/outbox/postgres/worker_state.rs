//! The org-wide gate (credentials pause, 429 hold) and each replica's heartbeat.

use sqlx::PgPool;
use crate::outbox::Gate;

use super::unported;

pub(super) async fn gate(_pool: &PgPool) -> anyhow::Result<Gate> {
    Err(unported("worker_state::gate"))
}

pub(super) async fn set_paused(_pool: &PgPool, _reason: Option<&str>) -> anyhow::Result<()> {
    Err(unported("worker_state::set_paused"))
}

pub(super) async fn heartbeat(_pool: &PgPool, _replica: &str, _now: i64) -> anyhow::Result<()> {
    Err(unported("worker_state::heartbeat"))
}
