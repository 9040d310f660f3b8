//! Claiming due rows under a lease, at most one per email across every replica, and what a claimed attempt reads before it calls.

use sqlx::PgPool;
use crate::outbox::Claimed;

use super::unported;

pub(super) async fn claim_due(_pool: &PgPool, _now: i64, _limit: usize, _lease_until: i64) -> anyhow::Result<Vec<Claimed>> {
    Err(unported("claim::claim_due"))
}

pub(super) async fn next_due_at(_pool: &PgPool) -> anyhow::Result<Option<i64>> {
    Err(unported("claim::next_due_at"))
}

pub(super) async fn ledger_lookup(_pool: &PgPool, _org_id: &str, _email: &str) -> anyhow::Result<Option<String>> {
    Err(unported("claim::ledger_lookup"))
}

pub(super) async fn email_attempted_before(_pool: &PgPool, _email: &str, _except_id: i64) -> anyhow::Result<bool> {
    Err(unported("claim::email_attempted_before"))
}
