//! Refused CRM items: kept by ingest in the writer's transaction (with the events of the same
//! commit), by the worker with the failed row of a CRM record that has no usable email, and
//! listed for operators a keyset page at a time.

use anyhow::Context;
use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};

use crate::domain::outcome::Refusal;
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use crate::outbox::NewRefusal;

/// Inserts `refusals` (inside the writer's transaction); a repeated (source, event_id), in the
/// database or earlier in the batch, keeps nothing more.
pub(super) async fn insert_batch(
    conn: &mut SqliteConnection,
    refusals: &[&NewRefusal],
    now: i64,
) -> anyhow::Result<()> {
    for run in super::runs(refusals) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO refused (source, event_id, record_id, notification_id, reason, field, refused_at) ",
        );
        insert.push_values(run, |mut row, refusal| {
            row.push_bind(refusal.source)
                .push_bind(refusal.event_id.clone())
                .push_bind(refusal.record_id.clone())
                .push_bind(refusal.notification_id.clone())
                .push_bind(refusal.reason)
                .push_bind(refusal.field.clone())
                .push_bind(now);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to keep refused CRM items")?;
    }
    Ok(())
}

/// Keeps the refusal of outbox row `outbox_id` (inside the transaction recording its attempt),
/// under the row's source and event id: a retried row refused again is kept once.
pub(super) async fn insert_for_row(
    tx: &mut SqliteConnection,
    outbox_id: i64,
    refusal: &Refusal,
    now: i64,
) -> anyhow::Result<()> {
    // The WHERE clause also tells SQLite's parser that ON CONFLICT is not a join's ON.
    sqlx::query(
        "INSERT INTO refused (source, event_id, record_id, reason, field, outbox_id, refused_at)
         SELECT source, event_id, ?2, ?3, ?4, id, ?5 FROM outbox WHERE id = ?1
         ON CONFLICT DO NOTHING",
    )
    .bind(outbox_id)
    .bind(refusal.record_id.as_deref())
    .bind(refusal.code)
    .bind(refusal.field)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("Failed to keep a refused CRM record")?;
    Ok(())
}

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &RefusedFilter,
    after: Option<Cursor>,
    limit: usize,
) -> anyhow::Result<Vec<RefusedView>> {
    list_query(filter, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
        .context("Failed to list refused CRM items")
}

/// Newest first by (refused_at, id) on the index of the filter given (`INDEXED BY`: without
/// statistics SQLite may pick another and sort); SQLite appends the rowid to each index, so
/// the keyset's tie-break on id is read from it too.
fn list_query(filter: &RefusedFilter, after: Option<Cursor>, limit: usize) -> QueryBuilder<Sqlite> {
    let index = match (&filter.source, &filter.reason) {
        (Some(_), _) => "refused_source_at",
        (None, Some(_)) => "refused_reason_at",
        (None, None) => "refused_at",
    };
    let mut query = QueryBuilder::new(format!(
        "SELECT id, source, event_id, record_id, notification_id, reason, field, outbox_id, refused_at
         FROM refused INDEXED BY {index} WHERE true"
    ));
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(reason) = &filter.reason {
        query.push(" AND reason = ").push_bind(reason.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND refused_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND refused_at < ").push_bind(until);
    }
    if let Some(cursor) = after {
        query
            .push(" AND (refused_at, id) < (")
            .push_bind(cursor.at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(" ORDER BY refused_at DESC, id DESC LIMIT CAST(")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(" AS INTEGER)");
    query
}

#[cfg(test)]
mod tests {
    use sqlx::Execute;

    use super::*;

    /// A page reads only its index, in order: no scan of the table, no sort of every match.
    #[tokio::test]
    async fn each_filter_pages_on_its_own_index_without_sorting() {
        let some = |s: &str| Some(s.to_owned());
        for (filter, index) in [
            (RefusedFilter::default(), "refused_at"),
            (
                RefusedFilter {
                    since: Some(0),
                    until: Some(1),
                    ..RefusedFilter::default()
                },
                "refused_at",
            ),
            (
                RefusedFilter {
                    source: some("hubspot"),
                    ..RefusedFilter::default()
                },
                "refused_source_at",
            ),
            (
                RefusedFilter {
                    source: some("hubspot"),
                    reason: some("invalid_email"),
                    since: Some(0),
                    ..RefusedFilter::default()
                },
                "refused_source_at",
            ),
            (
                RefusedFilter {
                    reason: some("invalid_email"),
                    until: Some(1),
                    ..RefusedFilter::default()
                },
                "refused_reason_at",
            ),
        ] {
            for after in [None, Some(Cursor { at: 1, id: 1 })] {
                let mut query = list_query(&filter, after, 51);
                let detail = crate::outbox::sqlite::query_plan(query.build().sql().as_str()).await;
                // One line: the index of the filter, read in order (no sort after).
                assert_eq!(detail.len(), 1, "{filter:?} {after:?}: {detail:?}");
                let used = detail[0]
                    .split("USING INDEX ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next());
                assert_eq!(used, Some(index), "{filter:?} {after:?}: {detail:?}");
                if after.is_some() || filter != RefusedFilter::default() {
                    // The cursor and the filters bound the index range, not a scan of it.
                    assert!(detail.iter().any(|d| d.starts_with("SEARCH")), "{detail:?}");
                }
            }
        }
    }

    /// Refusals of one commit share their time: the id orders them, and pages of any size
    /// give each exactly once.
    #[tokio::test]
    async fn pages_over_refusals_of_one_instant_give_each_once() {
        let pool = crate::outbox::sqlite::memory_pool().await;
        let refusals: Vec<NewRefusal> = (0..7)
            .map(|n| NewRefusal {
                source: if n % 2 == 0 {
                    "salesforce"
                } else {
                    "pipedrive"
                },
                event_id: Some(format!("e{n}")),
                record_id: None,
                notification_id: None,
                reason: "missing_field",
                field: "email".into(),
            })
            .collect();
        let refs: Vec<&NewRefusal> = refusals.iter().collect();
        let mut conn = pool.acquire().await.expect("connection");
        insert_batch(&mut conn, &refs, 1_000).await.expect("insert");
        drop(conn);

        for (filter, expected) in [
            (RefusedFilter::default(), vec![7, 6, 5, 4, 3, 2, 1]),
            (
                RefusedFilter {
                    source: Some("salesforce".into()),
                    ..RefusedFilter::default()
                },
                vec![7, 5, 3, 1],
            ),
        ] {
            for limit in 1..=3 {
                let (mut seen, mut after) = (Vec::new(), None);
                loop {
                    let rows = list(&pool, &filter, after, limit).await.expect("page");
                    seen.extend(rows.iter().map(|r| r.id));
                    match rows.last() {
                        Some(last) if rows.len() == limit => {
                            after = Some(Cursor {
                                at: last.refused_at,
                                id: last.id,
                            })
                        }
                        _ => break,
                    }
                }
                assert_eq!(seen, expected, "{filter:?}, limit {limit}");
            }
        }
    }

    /// The worker's refusal is fenced like its row: an attempt that lost its lease keeps none.
    #[tokio::test]
    async fn a_refusal_is_kept_only_by_the_attempt_that_owns_the_row() {
        use crate::domain::outcome::Outcome;
        use crate::outbox::{AttemptLog, AttemptResult, Claimed};

        let pool = crate::outbox::sqlite::memory_pool().await;
        sqlx::query(
            "INSERT INTO outbox (id, source, event_id, crm_record, payload, state, attempts,
                                 next_attempt_at, received_at, updated_at)
             VALUES (7, 'hubspot', '1:9:created', 'hubspot:1:9', '{}', 'in_flight', 2, 0, 0, 0)",
        )
        .execute(&pool)
        .await
        .expect("row");
        let result = |attempts| AttemptResult {
            row: Claimed {
                id: 7,
                email: None,
                payload: "{}".into(),
                attempts,
                received_at: 0,
                attempts_before_retry: 0,
                retried_at: None,
                known_guest_id: None,
                attempted_before: false,
            },
            outcome: Outcome::Refused {
                reason: "HubSpot contact 9: the contact has no email address".into(),
                refusal: Refusal {
                    code: "no_email_in_crm",
                    field: "properties.email",
                    record_id: Some("9".into()),
                },
            },
            log: AttemptLog {
                started_at: 5,
                duration_ms: 1,
            },
            now: 5,
        };
        let kept = || async {
            sqlx::query_as::<_, (String, Option<String>, Option<i64>, String)>(
                "SELECT source, event_id, outbox_id, reason FROM refused",
            )
            .fetch_all(&pool)
            .await
            .expect("refused")
        };

        let owned = super::super::results::record(&pool, "org", &[result(1)]).await;
        assert_eq!(owned.expect("recorded"), [false]);
        assert!(kept().await.is_empty());

        let owned = super::super::results::record(&pool, "org", &[result(2)]).await;
        assert_eq!(owned.expect("recorded"), [true]);
        let want = (
            "hubspot".into(),
            Some("1:9:created".into()),
            Some(7),
            "no_email_in_crm".into(),
        );
        assert_eq!(kept().await, [want]);
        let state: String = sqlx::query_scalar("SELECT state FROM outbox WHERE id = 7")
            .fetch_one(&pool)
            .await
            .expect("state");
        assert_eq!(state, "failed");
    }
}
