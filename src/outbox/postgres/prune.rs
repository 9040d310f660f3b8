//! Retention: deleting end-state rows, refused items and audit entries older than their ages, in short batches.

use sqlx::PgPool;
use crate::configuration::RetentionSettings;
use crate::outbox::Pruned;

use super::unported;

pub(super) async fn prune(_pool: &PgPool, _now: i64, _policy: &RetentionSettings) -> anyhow::Result<Pruned> {
    Err(unported("prune::prune"))
}
