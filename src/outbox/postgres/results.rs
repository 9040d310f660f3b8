//! Recording attempts: each result fenced by its attempt number, the ledger as the last arbiter.

use sqlx::PgPool;
use crate::outbox::AttemptResult;

use super::unported;

pub(super) async fn record(_pool: &PgPool, _org_id: &str, _results: &[AttemptResult]) -> anyhow::Result<Vec<bool>> {
    Err(unported("results::record"))
}
