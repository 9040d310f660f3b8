//! Pacing within Tallyfy's hourly guest-invite cap, shared by every replica.

use sqlx::PgPool;
use crate::domain::pacing::{Budget, PacingLimit};

use super::unported;

pub(super) async fn budget(_pool: &PgPool, _now: i64, _limit: PacingLimit) -> anyhow::Result<Budget> {
    Err(unported("pacing::budget"))
}

pub(super) async fn spend(_pool: &PgPool, _now: i64, _limit: PacingLimit, _outbox_id: i64) -> anyhow::Result<Option<i64>> {
    Err(unported("pacing::spend"))
}

pub(super) async fn announce(_pool: &PgPool, _limit: PacingLimit) -> anyhow::Result<()> {
    Err(unported("pacing::announce"))
}
