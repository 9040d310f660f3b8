//! Which CRM records were queued or refused, read and remembered inside the writer's transaction.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::unported;
use crate::outbox::RecordState;

/// The state of each `(source, record_id)` in `keys` that the bridge knows (one query).
pub(super) async fn states<'k>(
    _conn: &mut PgConnection,
    _keys: &[(&'k str, &'k str)],
) -> anyhow::Result<HashMap<(&'k str, &'k str), RecordState>> {
    Err(unported("records::states"))
}
