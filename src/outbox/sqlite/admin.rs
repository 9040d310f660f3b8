//! The admin API's SQL: the delivery list (one index range per page, the index chosen by the
//! most selective filter), an operator's retry and cancel of one row or of a bounded set, each
//! audited in its own transaction, and the audit trail.

use anyhow::Context;
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool};

use crate::ops::DeliveryView;
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::outbox::RowState;

/// The columns of [`DeliveryView`].
const VIEW: &str = "id, source, event_id, email, crm_record, state, attempts, next_attempt_at,
     lease_until, guest_id, last_error, received_at, delivered_at, retried_at";

/// The index a filter reads, most selective first: an email has a few rows, a state or a source
/// many. `INDEXED BY` pins it (without statistics SQLite may pick another and sort), and every
/// index ends in (received_at, rowid), so the page is a range read newest first, never a sort.
fn index_of(filter: &DeliveryFilter) -> &'static str {
    if filter.email.is_some() {
        "outbox_email_received"
    } else if filter.state.is_some() {
        "outbox_state_received"
    } else if filter.source.is_some() {
        "outbox_source_received"
    } else {
        "outbox_received"
    }
}

/// `SELECT {columns} FROM outbox INDEXED BY … WHERE …` for `filter`, newest first.
pub(super) fn select(columns: &str, filter: &DeliveryFilter, paged: bool) -> String {
    let mut terms = vec!["1"];
    if filter.state.is_some() {
        terms.push("state = ?1");
    }
    if filter.source.is_some() {
        terms.push("source = ?2");
    }
    if filter.email.is_some() {
        terms.push("email = ?3");
    }
    if filter.since.is_some() {
        terms.push("received_at >= ?4");
    }
    if filter.until.is_some() {
        terms.push("received_at < ?5");
    }
    if paged {
        terms.push("(received_at, id) < (?6, ?7)");
    }
    format!(
        "SELECT {columns} FROM outbox INDEXED BY {} WHERE {} ORDER BY received_at DESC, id DESC",
        index_of(filter),
        terms.join(" AND ")
    )
}

fn list_sql(filter: &DeliveryFilter, paged: bool) -> String {
    format!("{} LIMIT CAST(?8 AS INTEGER)", select(VIEW, filter, paged))
}

/// What an action does to a row, and the states it applies to as an SQL list (from
/// [`RowAction::from_states`], the one place they are named).
pub(super) fn change_sql(action: RowAction) -> (&'static str, String) {
    let set = match action {
        // Due now with a fresh budget; `attempts` keeps counting (the fence, and the sign that
        // an earlier attempt may have reached Tallyfy).
        RowAction::Retry => {
            "state = 'queued', next_attempt_at = ?9, lease_until = NULL, retried_at = ?9,
             attempts_before_retry = attempts, updated_at = ?9"
        }
        RowAction::Cancel => "state = 'cancelled', lease_until = NULL, updated_at = ?9",
    };
    let states: Vec<String> = action
        .from_states()
        .iter()
        .map(|state| format!("'{}'", state.as_str()))
        .collect();
    (set, format!("({})", states.join(", ")))
}

fn bulk_sql(filter: &DeliveryFilter, action: RowAction) -> String {
    let (set, states) = change_sql(action);
    format!(
        "UPDATE outbox SET {set} WHERE state IN {states} AND id IN ({} LIMIT CAST(?8 AS INTEGER)) RETURNING id",
        select("id", filter, false)
    )
}

fn more_sql(filter: &DeliveryFilter) -> String {
    format!("SELECT EXISTS ({} LIMIT 1)", select("1", filter, false))
}

pub(super) type Query<'q, O> = sqlx::query::QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments>;

/// Binds what every list and bulk statement may use, in this order (a statement that does not
/// use one still binds it, as NULL): ?1 state, ?2 source, ?3 email, ?4 since, ?5 until,
/// ?6 cursor time, ?7 cursor id, ?8 limit, ?9 now.
pub(super) fn bind<'q, O>(
    query: Query<'q, O>,
    filter: &'q DeliveryFilter,
    after: Option<Cursor>,
    limit: usize,
    now: i64,
) -> Query<'q, O> {
    query
        .bind(filter.state)
        .bind(filter.source.as_deref())
        .bind(filter.email.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(limit as i64)
        .bind(now)
}

/// One page of the admin list (`limit` rows; the endpoint asks one more to know if another
/// page follows). Public for `examples/claim_bench`.
pub async fn list_deliveries(
    pool: &SqlitePool,
    filter: &DeliveryFilter,
    after: Option<Cursor>,
    limit: usize,
) -> anyhow::Result<Vec<DeliveryView>> {
    let sql = list_sql(filter, after.is_some());
    bind(sqlx::query_as(AssertSqlSafe(sql)), filter, after, limit, 0)
        .fetch_all(pool)
        .await
        .context("Failed to list deliveries")
}

pub(super) async fn change_delivery(
    pool: &SqlitePool,
    id: i64,
    action: RowAction,
    note: &AuditNote,
) -> anyhow::Result<Moved> {
    let (set, states) = change_sql(action);
    let sql =
        format!("UPDATE outbox SET {set} WHERE id = ?1 AND state IN {states} RETURNING {VIEW}");
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin an admin change")?;
    let changed: Option<DeliveryView> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .bind(note.at)
        // ?2 to ?8 are unused here (see `bind`); ?9 is now.
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(note.at)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to change a delivery")?;
    let Some(row) = changed else {
        let state: Option<RowState> = sqlx::query_scalar("SELECT state FROM outbox WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("Failed to read a delivery's state")?;
        return Ok(state.map_or(Moved::NotFound, Moved::Refused));
    };
    audit(
        &mut tx,
        note,
        action.single(),
        Some(&id.to_string()),
        None,
        1,
    )
    .await?;
    tx.commit()
        .await
        .context("Failed to commit an admin change")?;
    Ok(Moved::Done(Box::new(row)))
}

pub(super) async fn change_deliveries(
    pool: &SqlitePool,
    filter: &DeliveryFilter,
    action: RowAction,
    limit: usize,
    note: &AuditNote,
) -> anyhow::Result<(u64, bool)> {
    anyhow::ensure!(filter.state.is_some(), "a bulk change needs a state");
    // The UPDATE comes first, so the transaction holds the write lock from its first statement.
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin an admin change")?;
    let moved = bind(
        sqlx::query_as::<_, (i64,)>(AssertSqlSafe(bulk_sql(filter, action))),
        filter,
        None,
        limit,
        note.at,
    )
    .fetch_all(&mut *tx)
    .await
    .context("Failed to change deliveries")?
    .len() as u64;
    // Moved rows left the filter's state, so any row still matching was left for next time.
    let more: bool = bind(
        sqlx::query_as::<_, (bool,)>(AssertSqlSafe(more_sql(filter))),
        filter,
        None,
        limit,
        note.at,
    )
    .fetch_one(&mut *tx)
    .await
    .context("Failed to count the deliveries left")?
    .0;
    let filter_json = serde_json::json!({"filter": filter, "limit": limit}).to_string();
    audit(
        &mut tx,
        note,
        action.bulk(),
        None,
        Some(&filter_json),
        moved,
    )
    .await?;
    tx.commit()
        .await
        .context("Failed to commit an admin change")?;
    Ok((moved, more))
}

/// One audit line; `target` names a row (its id) or a source (a reconcile).
pub(super) async fn audit(
    conn: &mut SqliteConnection,
    note: &AuditNote,
    action: &str,
    target: Option<&str>,
    filter: Option<&str>,
    affected: u64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO admin_audit (at, action, target, filter, affected, request_id, principal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(note.at)
    .bind(action)
    .bind(target)
    .bind(filter)
    .bind(affected as i64)
    .bind(note.request_id.as_deref())
    .bind(note.principal)
    .execute(conn)
    .await
    .context("Failed to write the admin audit")?;
    Ok(())
}

fn audit_sql(paged: bool) -> String {
    format!(
        "SELECT id, at, action, target, filter, affected, request_id, principal
         FROM admin_audit INDEXED BY admin_audit_at WHERE {} ORDER BY at DESC, id DESC LIMIT CAST(?3 AS INTEGER)",
        if paged {
            "(at, id) < (?1, ?2)"
        } else {
            "?1 IS NULL"
        }
    )
}

pub(super) async fn audit_log(
    pool: &SqlitePool,
    after: Option<Cursor>,
    limit: usize,
) -> anyhow::Result<Vec<AuditView>> {
    sqlx::query_as(AssertSqlSafe(audit_sql(after.is_some())))
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(limit as i64)
        .fetch_all(pool)
        .await
        .context("Failed to read the admin audit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::sqlite::query_plan;

    fn filter(state: bool, source: bool, email: bool) -> DeliveryFilter {
        DeliveryFilter {
            state: state.then_some(RowState::Failed),
            source: source.then(|| "hubspot".into()),
            email: email.then(|| "a@example.com".into()),
            since: Some(1),
            until: Some(2),
        }
    }

    /// A page reads one range of the chosen index, newest first: no scan of the outbox and no
    /// sort, so it costs the same at 1 M rows as at 1 k.
    fn assert_range_read(plan: &[String], index: &str) {
        assert!(
            plan.iter().any(
                |d| d.starts_with(&format!("SEARCH outbox USING INDEX {index} ("))
                    || d.starts_with(&format!("SEARCH outbox USING COVERING INDEX {index} ("))
            ),
            "{index}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN outbox")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
    }

    #[tokio::test]
    async fn each_filter_reads_its_own_index_without_a_sort() {
        for (filter, index) in [
            (filter(true, true, true), "outbox_email_received"),
            (filter(false, false, true), "outbox_email_received"),
            (filter(true, true, false), "outbox_state_received"),
            (filter(true, false, false), "outbox_state_received"),
            (filter(false, true, false), "outbox_source_received"),
            (filter(false, false, false), "outbox_received"),
        ] {
            for paged in [false, true] {
                assert_range_read(&query_plan(&list_sql(&filter, paged)).await, index);
            }
            assert_range_read(&query_plan(&more_sql(&filter)).await, index);
        }
    }

    #[tokio::test]
    async fn an_unfiltered_first_page_reads_the_received_index_backwards() {
        let plan = query_plan(&list_sql(&DeliveryFilter::default(), false)).await;
        assert!(
            plan.iter().any(|d| d.contains("outbox_received")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
    }

    #[tokio::test]
    async fn a_bulk_change_chooses_its_rows_through_the_index() {
        for action in [RowAction::Retry, RowAction::Cancel] {
            for (filter, index) in [
                (filter(true, false, true), "outbox_email_received"),
                (filter(true, true, false), "outbox_state_received"),
            ] {
                let plan = query_plan(&bulk_sql(&filter, action)).await;
                assert!(plan.iter().any(|d| d.contains(index)), "{plan:?}");
                assert!(
                    !plan.iter().any(|d| d.starts_with("SCAN outbox")),
                    "{plan:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_audit_page_reads_its_index_without_a_sort() {
        for paged in [false, true] {
            let plan = query_plan(&audit_sql(paged)).await;
            assert!(
                plan.iter().any(|d| d.contains("admin_audit_at")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
        }
        let paged = query_plan(&audit_sql(true)).await;
        assert!(paged.iter().any(|d| d.starts_with("SEARCH")), "{paged:?}");
    }
}
