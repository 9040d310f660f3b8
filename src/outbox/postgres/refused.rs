//! Refused CRM items: kept in the group commit, listed for operators.

use crate::domain::outcome::Refusal;
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use sqlx::{PgConnection, PgPool};

use super::unported;

pub(super) async fn list(
    _pool: &PgPool,
    _filter: &RefusedFilter,
    _after: Option<Cursor>,
    _limit: usize,
) -> anyhow::Result<Vec<RefusedView>> {
    Err(unported("refused::list"))
}

/// Keeps `refusal` of the failed row `outbox_id` (inside the worker's transaction).
pub(super) async fn insert_for_row(
    _tx: &mut PgConnection,
    _outbox_id: i64,
    _refusal: &Refusal,
    _now: i64,
) -> anyhow::Result<()> {
    Err(unported("refused::insert_for_row"))
}
