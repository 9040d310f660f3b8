//! The admin API's SQL on PostgreSQL: the delivery list (one index range per page, newest
//! first), an operator's retry and cancel of one row or of a bounded set, each audited in its own
//! transaction, and the audit trail.
//!
//! Across replicas, an operator's change never races a worker's record: every UPDATE keeps the
//! `WHERE state IN (…)` guard of [`RowAction::from_states`] (never `in_flight`), and under READ
//! COMMITTED an UPDATE that waited for a row a claim or a record was changing re-checks that
//! WHERE on the row as committed, so a row claimed meanwhile is left alone.

use anyhow::Context;
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, Postgres};

use crate::ops::DeliveryView;
use crate::ops::audit::{AuditNote, AuditView};
use crate::ops::deliveries::{DeliveryFilter, Moved, RowAction};
use crate::ops::page::Cursor;
use crate::outbox::RowState;

/// The columns of [`DeliveryView`].
const VIEW: &str = "id, source, event_id, email, crm_record, state, attempts, next_attempt_at,
     lease_until, guest_id, last_error, received_at, delivered_at, retried_at";

/// `SELECT {columns} FROM outbox WHERE …` for `filter`, newest first.
///
/// PostgreSQL has no `INDEXED BY`: the planner picks the index. Every index the list may read
/// (`outbox_received`, `outbox_state_received`, `outbox_source_received`,
/// `outbox_email_received`) ends in (received_at, id), so with any filter's equality first the
/// page is a backward range read of one of them, the keyset `(received_at, id) < ($6, $7)` a
/// bound of that range, never a sort. With statistics, the planner takes the most selective.
pub(super) fn select(columns: &str, filter: &DeliveryFilter, paged: bool) -> String {
    let mut terms = vec!["TRUE"];
    if filter.state.is_some() {
        terms.push("state = $1");
    }
    if filter.source.is_some() {
        terms.push("source = $2");
    }
    if filter.email.is_some() {
        terms.push("email = $3");
    }
    if filter.since.is_some() {
        terms.push("received_at >= $4");
    }
    if filter.until.is_some() {
        terms.push("received_at < $5");
    }
    if paged {
        terms.push("(received_at, id) < ($6, $7)");
    }
    format!(
        "SELECT {columns} FROM outbox WHERE {} ORDER BY received_at DESC, id DESC",
        terms.join(" AND ")
    )
}

fn list_sql(filter: &DeliveryFilter, paged: bool) -> String {
    format!("{} LIMIT $8", select(VIEW, filter, paged))
}

/// What an action does to a row, and the states it applies to as an SQL list (from
/// [`RowAction::from_states`], the one place they are named).
pub(super) fn change_sql(action: RowAction) -> (&'static str, String) {
    let set = match action {
        // Due now with a fresh budget; `attempts` keeps counting (the fence, and the sign that
        // an earlier attempt may have reached Tallyfy).
        RowAction::Retry => {
            "state = 'queued', next_attempt_at = $9, lease_until = NULL, retried_at = $9,
             attempts_before_retry = attempts, updated_at = $9"
        }
        RowAction::Cancel => "state = 'cancelled', lease_until = NULL, updated_at = $9",
    };
    let states: Vec<String> = action
        .from_states()
        .iter()
        .map(|state| format!("'{}'", state.as_str()))
        .collect();
    (set, format!("({})", states.join(", ")))
}

/// The bulk change: the filter's newest `$8` rows, each moved only if still in a state the
/// action applies to when the UPDATE reaches it (re-checked after any row lock wait).
fn bulk_sql(filter: &DeliveryFilter, action: RowAction) -> String {
    let (set, states) = change_sql(action);
    format!(
        "UPDATE outbox SET {set} WHERE state IN {states} AND id IN ({} LIMIT $8) RETURNING id",
        select("id", filter, false)
    )
}

fn more_sql(filter: &DeliveryFilter) -> String {
    format!("SELECT EXISTS ({} LIMIT 1)", select("1", filter, false))
}

pub(super) type Query<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, PgArguments>;

/// Binds what every list and bulk statement may use, in this order (a statement that does not
/// use one still binds it, as a typed NULL: sqlx declares every parameter's type, so PostgreSQL
/// accepts parameters a statement does not name): $1 state, $2 source, $3 email, $4 since,
/// $5 until, $6 cursor time, $7 cursor id, $8 limit, $9 now.
pub(super) fn bind<'q, O>(
    query: Query<'q, O>,
    filter: &'q DeliveryFilter,
    after: Option<Cursor>,
    limit: usize,
    now: i64,
) -> Query<'q, O> {
    query
        .bind(filter.state.map(RowState::as_str))
        .bind(filter.source.as_deref())
        .bind(filter.email.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(now)
}

/// One page of the admin list (`limit` rows; the endpoint asks one more to know if another
/// page follows).
pub(super) async fn list_deliveries(
    pool: &PgPool,
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

/// One row's retry or cancel and its audit line, in one transaction. The UPDATE's state guard
/// is what makes it safe beside claims and records on other replicas (see the module's note);
/// when it moves nothing, the state read after says why.
pub(super) async fn change_delivery(
    pool: &PgPool,
    id: i64,
    action: RowAction,
    note: &AuditNote,
) -> anyhow::Result<Moved> {
    let (set, states) = change_sql(action);
    let sql =
        format!("UPDATE outbox SET {set} WHERE id = $1 AND state IN {states} RETURNING {VIEW}");
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin an admin change")?;
    let changed: Option<DeliveryView> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        // $2 to $8 are unused here (see `bind`); $9 is now.
        .bind(None::<i64>)
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
        let state: Option<RowState> = sqlx::query_scalar("SELECT state FROM outbox WHERE id = $1")
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

/// A bounded bulk change, whether rows are left, and its audit line, in one transaction. The
/// UPDATE holds the rows it moved until the commit, so the `more` check after it (which sees
/// them in their new state) and the audited count agree; rows claimed by a worker meanwhile
/// fail the state guard and are neither moved nor counted.
pub(super) async fn change_deliveries(
    pool: &PgPool,
    filter: &DeliveryFilter,
    action: RowAction,
    limit: usize,
    note: &AuditNote,
) -> anyhow::Result<(u64, bool)> {
    anyhow::ensure!(filter.state.is_some(), "a bulk change needs a state");
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
    conn: &mut PgConnection,
    note: &AuditNote,
    action: &str,
    target: Option<&str>,
    filter: Option<&str>,
    affected: u64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO admin_audit (at, action, target, filter, affected, request_id, principal)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(note.at)
    .bind(action)
    .bind(target)
    .bind(filter)
    .bind(i64::try_from(affected).unwrap_or(i64::MAX))
    .bind(note.request_id.as_deref())
    .bind(note.principal)
    .execute(conn)
    .await
    .context("Failed to write the admin audit")?;
    Ok(())
}

/// The audit trail newest first, a backward range of `admin_audit_at (at, id)`.
fn audit_sql(paged: bool) -> String {
    format!(
        "SELECT id, at, action, target, filter, affected, request_id, principal
         FROM admin_audit WHERE {} ORDER BY at DESC, id DESC LIMIT $3",
        if paged {
            "(at, id) < ($1, $2)"
        } else {
            "$1::BIGINT IS NULL"
        }
    )
}

pub(super) async fn audit_log(
    pool: &PgPool,
    after: Option<Cursor>,
    limit: usize,
) -> anyhow::Result<Vec<AuditView>> {
    sqlx::query_as(AssertSqlSafe(audit_sql(after.is_some())))
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .context("Failed to read the admin audit")
}

/// Test helpers shared with the console's tests: plans of statements written with `$n`.
#[cfg(test)]
pub(super) mod plans {
    use sqlx::PgPool;

    /// `sql` with `$1`…`$9` (see [`super::bind`]) replaced by literals: PostgreSQL 15 cannot
    /// EXPLAIN a statement with unbound parameters, and a plan for literals is the one the
    /// first executions of a prepared statement get.
    pub(crate) fn literal(sql: &str) -> String {
        let values = [
            "'failed'",
            "'hubspot'",
            "'a@example.com'",
            "1",
            "2",
            "5",
            "6",
            "50",
            "7",
        ];
        let mut sql = sql.to_owned();
        for (n, value) in values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", n + 1), value);
        }
        sql
    }

    /// The plan of `sql` with its parameters made literal.
    pub(crate) async fn plan(pool: &PgPool, sql: &str) -> Vec<String> {
        super::super::query_plan(pool, &literal(sql)).await
    }

    /// A range read of one of `indexes` (backward or not), no scan of the outbox and no sort.
    pub(crate) fn assert_range_read(plan: &[String], indexes: &[&str]) {
        assert!(
            plan.iter().any(|d| indexes
                .iter()
                .any(|index| d.contains(&format!(" using {index} on outbox")))),
            "{indexes:?}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.contains("Seq Scan on outbox")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.trim_start().starts_with("Sort")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("Sort  (")), "{plan:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::plans::{assert_range_read, plan};
    use super::*;

    fn filter(state: bool, source: bool, email: bool) -> DeliveryFilter {
        DeliveryFilter {
            state: state.then_some(RowState::Failed),
            source: source.then(|| "hubspot".into()),
            email: email.then(|| "a@example.com".into()),
            since: Some(1),
            until: Some(2),
        }
    }

    /// A page reads one range of an index of its filter, newest first: no scan of the outbox and
    /// no sort, so it costs the same at 1 M rows as at 1 k. Where two filters have an index each
    /// (a state and a source), PostgreSQL chooses between them by statistics; either is a range.
    #[tokio::test]
    async fn each_filter_reads_its_own_index_without_a_sort() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let email = ["outbox_email_received"];
        let state_or_source = ["outbox_state_received", "outbox_source_received"];
        for (filter, indexes) in [
            (filter(true, true, true), &email[..]),
            (filter(false, false, true), &email[..]),
            (filter(true, true, false), &state_or_source[..]),
            (filter(true, false, false), &["outbox_state_received"][..]),
            (filter(false, true, false), &["outbox_source_received"][..]),
            (filter(false, false, false), &["outbox_received"][..]),
        ] {
            for paged in [false, true] {
                assert_range_read(&plan(&pool, &list_sql(&filter, paged)).await, indexes);
            }
            // EXISTS drops the ORDER BY and LIMIT: any index range of a filter's column will
            // do (with the email, an empty table makes `outbox_ended` on the state look as good).
            let more = plan(&pool, &more_sql(&filter)).await;
            assert!(more.iter().any(|d| d.contains("Index")), "{more:?}");
            assert!(
                !more.iter().any(|d| d.contains("Seq Scan on outbox")),
                "{more:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unfiltered_first_page_reads_the_received_index_backwards() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let plan = plan(&pool, &list_sql(&DeliveryFilter::default(), false)).await;
        assert!(
            plan.iter()
                .any(|d| d.contains("Backward using outbox_received")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("Sort")), "{plan:?}");
    }

    #[tokio::test]
    async fn a_bulk_change_chooses_its_rows_through_the_index() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        for action in [RowAction::Retry, RowAction::Cancel] {
            for (filter, index) in [
                (filter(true, false, true), "outbox_email_received"),
                (filter(true, false, false), "outbox_state_received"),
            ] {
                let plan = plan(&pool, &bulk_sql(&filter, action)).await;
                assert!(plan.iter().any(|d| d.contains(index)), "{plan:?}");
                assert!(
                    !plan.iter().any(|d| d.contains("Seq Scan on outbox")),
                    "{plan:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_audit_page_reads_its_index_without_a_sort() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        // The audit's own parameters: $1 cursor time, $2 cursor id, $3 limit.
        let audit_sql = |paged| {
            audit_sql(paged)
                .replace("$1", if paged { "5" } else { "NULL" })
                .replace("$2", "6")
                .replace("$3", "50")
        };
        for paged in [false, true] {
            let plan = plan(&pool, &audit_sql(paged)).await;
            assert!(
                plan.iter()
                    .any(|d| d.contains("Backward using admin_audit_at")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|d| d.contains("Sort")), "{plan:?}");
        }
        let paged = plan(&pool, &audit_sql(true)).await;
        assert!(paged.iter().any(|d| d.contains("Index Cond")), "{paged:?}");
    }

    async fn insert(pool: &PgPool, email: &str, state: &str, received_at: i64) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO outbox (source, email, payload, state, attempts, next_attempt_at,
                                 received_at, updated_at)
             VALUES ('hubspot', $1, '{}', $2, 1, 0, $3, $3) RETURNING id",
        )
        .bind(email)
        .bind(state)
        .bind(received_at)
        .fetch_one(pool)
        .await
        .expect("row")
    }

    fn note(at: i64) -> AuditNote {
        AuditNote {
            at,
            request_id: Some("req-1".into()),
            principal: AuditNote::ADMIN_API,
        }
    }

    /// Keyset pages newest first, ties on `received_at` broken by id, each filter applied.
    #[tokio::test]
    async fn pages_follow_received_at_then_id_newest_first() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let a = insert(&pool, "a@x.com", "failed", 10).await;
        let b = insert(&pool, "b@x.com", "queued", 20).await;
        let c = insert(&pool, "a@x.com", "failed", 20).await;
        let d = insert(&pool, "c@x.com", "delivered", 30).await;
        let all = DeliveryFilter::default();
        let first = list_deliveries(&pool, &all, None, 2).await.expect("page");
        let ids: Vec<i64> = first.iter().map(|r| r.id).collect();
        assert_eq!(ids, [d, c]);
        let after = Cursor {
            at: first[1].received_at,
            id: first[1].id,
        };
        let second = list_deliveries(&pool, &all, Some(after), 5)
            .await
            .expect("page");
        let ids: Vec<i64> = second.iter().map(|r| r.id).collect();
        assert_eq!(ids, [b, a]);

        let failed = DeliveryFilter {
            state: Some(RowState::Failed),
            email: Some("a@x.com".into()),
            ..DeliveryFilter::default()
        };
        let rows = list_deliveries(&pool, &failed, None, 5)
            .await
            .expect("filtered");
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, [c, a]);
        assert_eq!(rows[0].state, RowState::Failed);
        let window = DeliveryFilter {
            source: Some("hubspot".into()),
            since: Some(20),
            until: Some(30),
            ..DeliveryFilter::default()
        };
        let rows = list_deliveries(&pool, &window, None, 5)
            .await
            .expect("window");
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, [c, b]);
    }

    /// One row: moved and audited from an allowed state; refused (naming the state) otherwise,
    /// and not found for an unknown id, neither audited.
    #[tokio::test]
    async fn a_row_changes_only_from_the_actions_states_and_is_audited() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let failed = insert(&pool, "a@x.com", "failed", 10).await;
        let in_flight = insert(&pool, "b@x.com", "in_flight", 11).await;

        match change_delivery(&pool, failed, RowAction::Retry, &note(500))
            .await
            .expect("retry")
        {
            Moved::Done(row) => {
                assert_eq!(row.state, RowState::Queued);
                assert_eq!((row.next_attempt_at, row.retried_at), (500, Some(500)));
            }
            other => panic!("{other:?}"),
        }
        let budget: (i64, i64) =
            sqlx::query_as("SELECT attempts, attempts_before_retry FROM outbox WHERE id = $1")
                .bind(failed)
                .fetch_one(&pool)
                .await
                .expect("row");
        assert_eq!(budget, (1, 1));
        assert!(matches!(
            change_delivery(&pool, in_flight, RowAction::Cancel, &note(501))
                .await
                .expect("cancel"),
            Moved::Refused(RowState::InFlight)
        ));
        assert!(matches!(
            change_delivery(&pool, 9_999, RowAction::Cancel, &note(502))
                .await
                .expect("cancel"),
            Moved::NotFound
        ));
        let log = audit_log(&pool, None, 10).await.expect("audit");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "retry");
        assert_eq!(log[0].target.as_deref(), Some(failed.to_string().as_str()));
        assert_eq!(
            (log[0].affected, log[0].principal.as_str()),
            (1, "admin_api")
        );
        assert_eq!(log[0].request_id.as_deref(), Some("req-1"));
    }

    /// A bulk change moves at most `limit` rows of the filter, says whether any are left, and
    /// writes one audit line with the filter; the audit trail pages newest first.
    #[tokio::test]
    async fn a_bulk_change_is_limited_says_what_is_left_and_is_audited() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        for n in 0..3 {
            insert(&pool, &format!("f{n}@x.com"), "failed", n).await;
        }
        insert(&pool, "q@x.com", "queued", 5).await;
        let failed = DeliveryFilter {
            state: Some(RowState::Failed),
            ..DeliveryFilter::default()
        };
        let unfiltered = DeliveryFilter::default();
        assert!(
            change_deliveries(&pool, &unfiltered, RowAction::Cancel, 2, &note(1))
                .await
                .is_err()
        );
        let first = change_deliveries(&pool, &failed, RowAction::Cancel, 2, &note(600))
            .await
            .expect("bulk");
        assert_eq!(first, (2, true));
        let second = change_deliveries(&pool, &failed, RowAction::Cancel, 2, &note(601))
            .await
            .expect("bulk");
        assert_eq!(second, (1, false));
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, n FROM outbox_counts WHERE n <> 0 ORDER BY state")
                .fetch_all(&pool)
                .await
                .expect("counts");
        assert_eq!(counts, [("cancelled".into(), 3), ("queued".into(), 1)]);

        let log = audit_log(&pool, None, 1).await.expect("audit");
        assert_eq!(
            (log[0].action.as_str(), log[0].affected),
            ("bulk_cancel", 1)
        );
        let filter: serde_json::Value =
            serde_json::from_str(log[0].filter.as_deref().expect("filter")).expect("json");
        assert_eq!(filter["filter"]["state"], "failed");
        assert_eq!(filter["limit"], 2);
        let after = Cursor {
            at: log[0].at,
            id: log[0].id,
        };
        let older = audit_log(&pool, Some(after), 10).await.expect("audit");
        assert_eq!(older.len(), 1);
        assert_eq!((older[0].at, older[0].affected), (600, 2));
    }

    /// A claim on another replica that holds a queued row (moving it in flight) makes an
    /// operator's cancel of it wait; once the claim commits, the UPDATE re-checks its state guard
    /// on the row as committed and leaves it in flight, one row or in bulk.
    #[tokio::test]
    async fn a_change_waiting_for_a_claim_re_checks_its_state_guard() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let one = insert(&pool, "a@x.com", "queued", 10).await;
        let bulk = insert(&pool, "b@x.com", "queued", 11).await;
        let mut claim = pool.begin().await.expect("begin");
        sqlx::query("UPDATE outbox SET state = 'in_flight', lease_until = 99 WHERE id = ANY($1)")
            .bind(vec![one, bulk])
            .execute(&mut *claim)
            .await
            .expect("claim");
        let queued = DeliveryFilter {
            state: Some(RowState::Queued),
            ..DeliveryFilter::default()
        };
        let (first, second) = (note(700), note(701));
        let (single, many, ()) = tokio::join!(
            change_delivery(&pool, one, RowAction::Cancel, &first),
            change_deliveries(&pool, &queued, RowAction::Cancel, 10, &second),
            async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                claim.commit().await.expect("commit");
            }
        );
        assert!(
            matches!(single.expect("cancel"), Moved::Refused(RowState::InFlight)),
            "the claim won"
        );
        assert_eq!(many.expect("bulk"), (0, false));
        let states: Vec<String> = sqlx::query_scalar("SELECT state FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("states");
        assert_eq!(states, ["in_flight", "in_flight"]);
    }
}
