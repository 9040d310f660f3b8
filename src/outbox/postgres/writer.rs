//! The PostgreSQL side of the group commit ([`crate::outbox::writer`]): one transaction per
//! batch on a pool of one connection of its own, which the pool re-opens after the server
//! restarts (a batch that fails meanwhile answers 503 and the CRM sends it again).

use sqlx::PgPool;

use super::unported;
use crate::outbox::writer::{Accepted, Commit, NewEvent, NewRefusal};

/// The writer's own pool (one connection, never shared with reads).
pub struct PgCommit {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl Commit for PgCommit {
    async fn commit(
        &mut self,
        _events: &[&NewEvent],
        _refusals: &[&NewRefusal],
    ) -> anyhow::Result<Vec<Accepted>> {
        Err(unported("writer::commit"))
    }

    async fn close(self) {
        self.pool.close().await;
    }
}
