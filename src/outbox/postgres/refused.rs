//! Refused CRM items: kept by ingest in the writer's transaction (with the events of the same
//! commit), by the worker with the failed row of a CRM record that has no usable email, and
//! listed for operators a keyset page at a time.

use anyhow::Context;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::domain::outcome::Refusal;
use crate::ops::page::Cursor;
use crate::ops::refused::{RefusedFilter, RefusedView};
use crate::outbox::NewRefusal;

/// Inserts `refusals` (inside the writer's transaction); a repeated (source, event_id), in the
/// database or earlier in the batch, keeps nothing more. Another replica's writer keeping the
/// same one at once waits on the unique index and then keeps nothing; the rows go in ordered by
/// event id, so two such writers wait in one order, never on each other.
pub(super) async fn insert_batch(
    conn: &mut PgConnection,
    refusals: &[&NewRefusal],
    now: i64,
) -> anyhow::Result<()> {
    let mut sorted = refusals.to_vec();
    // Stable: the first of a repeated event id is the one kept, as on SQLite.
    sorted.sort_by_key(|r| r.event_id.as_deref().map(|id| (r.source, id)));
    sqlx::query(
        "INSERT INTO refused (source, event_id, record_id, notification_id, reason, field, refused_at)
         SELECT source, event_id, record_id, notification_id, reason, field, $7
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
             WITH ORDINALITY AS r (source, event_id, record_id, notification_id, reason, field, n)
         ORDER BY n
         ON CONFLICT (source, event_id) WHERE event_id IS NOT NULL DO NOTHING",
    )
    .bind(sorted.iter().map(|r| r.source).collect::<Vec<&str>>())
    .bind(sorted.iter().map(|r| r.event_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|r| r.record_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|r| r.notification_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(sorted.iter().map(|r| r.reason).collect::<Vec<&str>>())
    .bind(sorted.iter().map(|r| r.field.as_str()).collect::<Vec<&str>>())
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("Failed to keep refused CRM items")?;
    Ok(())
}

/// Keeps the refusal of outbox row `outbox_id` (inside the transaction recording its attempt),
/// under the row's source and event id: a retried row refused again is kept once. The caller's
/// fenced UPDATE of the row holds it, so no other replica records this row meanwhile.
pub(super) async fn insert_for_row(
    tx: &mut PgConnection,
    outbox_id: i64,
    refusal: &Refusal,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO refused (source, event_id, record_id, reason, field, outbox_id, refused_at)
         SELECT source, event_id, $2, $3, $4, id, $5 FROM outbox WHERE id = $1
         ON CONFLICT (source, event_id) WHERE event_id IS NOT NULL DO NOTHING",
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
    pool: &PgPool,
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

/// Newest first by (refused_at, id): every index of the filters ends with (refused_at, id), so
/// the planner reads the one of the filter given backwards, bounded by the filters and the
/// cursor (a row comparison on the index's columns), and never sorts the matches.
fn list_query(
    filter: &RefusedFilter,
    after: Option<Cursor>,
    limit: usize,
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(
        "SELECT id, source, event_id, record_id, notification_id, reason, field, outbox_id, refused_at
         FROM refused WHERE true",
    );
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
        .push(" ORDER BY refused_at DESC, id DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    query
}

#[cfg(test)]
mod tests {
    use sqlx::Execute;

    use super::*;

    /// `sql` with its `$n` written as the literals `values` (in order), for EXPLAIN.
    fn with_literals(sql: &str, values: &[String]) -> String {
        let mut text = sql.to_owned();
        for (n, value) in values.iter().enumerate().rev() {
            text = text.replace(&format!("${}", n + 1), value);
        }
        text
    }

    /// A page reads only its index, backwards, in order: no scan of the table, no sort of every
    /// match. PostgreSQL has no `INDEXED BY` and goes by statistics, so the table holds 20 000
    /// refusals (analysed) where each filter is selective (2 % hubspot, 1.4 % invalid_email):
    /// on an empty table it rightly sorts a handful, and for a common source it may read the
    /// time index and skip the others, neither of which says anything of 1 M rows.
    #[tokio::test]
    async fn each_filter_pages_on_its_own_index_without_sorting() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let mut conn = pool.acquire().await.expect("connection");
        sqlx::query(
            "INSERT INTO refused (source, reason, field, refused_at)
             SELECT CASE WHEN i % 50 = 0 THEN 'hubspot' ELSE 'pipedrive' END,
                    CASE WHEN i % 70 = 0 THEN 'invalid_email' ELSE 'missing_field' END,
                    'email', i
             FROM generate_series(1, 20000) AS i",
        )
        .execute(&mut *conn)
        .await
        .expect("refusals");
        sqlx::query("ANALYZE refused")
            .execute(&mut *conn)
            .await
            .expect("analyze");
        let some = |s: &str| Some(s.to_owned());
        for (filter, indexes) in [
            (RefusedFilter::default(), &["refused_at"][..]),
            (
                RefusedFilter {
                    since: Some(5_000),
                    until: Some(15_000),
                    ..RefusedFilter::default()
                },
                &["refused_at"],
            ),
            (
                RefusedFilter {
                    source: some("hubspot"),
                    ..RefusedFilter::default()
                },
                &["refused_source_at"],
            ),
            (
                RefusedFilter {
                    source: some("hubspot"),
                    reason: some("invalid_email"),
                    since: Some(5_000),
                    ..RefusedFilter::default()
                },
                // Either index serves; when it estimates few rows match both filters, the
                // planner reads one index's range and sorts those few (see below).
                &["refused_source_at", "refused_reason_at"],
            ),
            (
                RefusedFilter {
                    reason: some("invalid_email"),
                    until: Some(15_000),
                    ..RefusedFilter::default()
                },
                &["refused_reason_at"],
            ),
        ] {
            for after in [
                None,
                Some(Cursor {
                    at: 10_000,
                    id: 10_000,
                }),
            ] {
                let mut values = Vec::new();
                values.extend(filter.source.iter().map(|s| format!("'{s}'")));
                values.extend(filter.reason.iter().map(|s| format!("'{s}'")));
                values.extend(filter.since.iter().map(i64::to_string));
                values.extend(filter.until.iter().map(i64::to_string));
                if let Some(cursor) = after {
                    values.extend([cursor.at.to_string(), cursor.id.to_string()]);
                }
                values.push("51".into());
                let mut query = list_query(&filter, after, 51);
                let sql = with_literals(query.build().sql().as_str(), &values);
                let plan: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                        .fetch_all(&mut *conn)
                        .await
                        .expect("plan");
                let text = plan.join("\n");
                let both = filter.source.is_some() && filter.reason.is_some();
                let used = if both {
                    // "Index Scan Backward using NAME" or "Bitmap Index Scan on NAME".
                    indexes
                        .iter()
                        .find(|name| text.contains(&format!(" {name} ")))
                        .copied()
                } else {
                    text.split("Index Scan Backward using ")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .filter(|name| indexes.contains(name))
                };
                assert!(used.is_some(), "{filter:?} {after:?}: {text}");
                // One filter: its index gives the order. Both: the planner may sort the rows of
                // one index's range that it estimates match the other filter too.
                if !both {
                    assert!(!text.contains("Sort"), "{filter:?} {after:?}: {text}");
                }
                assert!(!text.contains("Seq Scan"), "{filter:?} {after:?}: {text}");
                if after.is_some() || filter != RefusedFilter::default() {
                    // The cursor and the filters bound the index range, not a scan of it.
                    assert!(text.contains("Index Cond"), "{filter:?} {after:?}: {text}");
                }
            }
        }
    }

    fn refusal(source: &'static str, event_id: &str) -> NewRefusal {
        NewRefusal {
            source,
            event_id: Some(event_id.into()),
            record_id: None,
            notification_id: None,
            reason: "missing_field",
            field: "email".into(),
        }
    }

    /// Refusals of one commit share their time: the id orders them, and pages of any size
    /// give each exactly once.
    #[tokio::test]
    async fn pages_over_refusals_of_one_instant_give_each_once() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let refusals: Vec<NewRefusal> = (0..7)
            .map(|n| {
                let source = if n % 2 == 0 {
                    "salesforce"
                } else {
                    "pipedrive"
                };
                refusal(source, &format!("e{n}"))
            })
            .collect();
        let refs: Vec<&NewRefusal> = refusals.iter().collect();
        let mut conn = pool.acquire().await.expect("connection");
        insert_batch(&mut conn, &refs, 1_000).await.expect("insert");
        drop(conn);
        // Rows go in by event id; which id each got does not matter, only that pages agree.
        let all = list(&pool, &RefusedFilter::default(), None, 100)
            .await
            .expect("all");
        assert_eq!(all.len(), 7);

        for filter in [
            RefusedFilter::default(),
            RefusedFilter {
                source: Some("salesforce".into()),
                ..RefusedFilter::default()
            },
        ] {
            let mut expected: Vec<i64> = all
                .iter()
                .filter(|r| filter.source.as_ref().is_none_or(|s| *s == r.source))
                .map(|r| r.id)
                .collect();
            expected.sort_unstable_by(|a, b| b.cmp(a));
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

    /// A repeated (source, event id), in the batch or already kept, keeps nothing more; the
    /// first of the batch is the one kept.
    #[tokio::test]
    async fn a_repeated_refusal_is_kept_once() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let mut conn = pool.acquire().await.expect("connection");
        let first = refusal("pipedrive", "e1");
        let mut copy = refusal("pipedrive", "e1");
        copy.field = "current.email".into();
        let other = refusal("hubspot", "e1");
        insert_batch(&mut conn, &[&first, &copy, &other], 1)
            .await
            .expect("insert");
        insert_batch(&mut conn, &[&copy], 2).await.expect("again");
        let kept: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT source, field, refused_at FROM refused ORDER BY source")
                .fetch_all(&mut *conn)
                .await
                .expect("kept");
        assert_eq!(
            kept,
            [
                ("hubspot".into(), "email".into(), 1),
                ("pipedrive".into(), "email".into(), 1)
            ]
        );
        let counted: i64 = sqlx::query_scalar(
            "SELECT n FROM refused_counts WHERE source = 'pipedrive' AND reason = 'missing_field'",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("count");
        assert_eq!(counted, 1);
    }

    /// The worker's refusal is kept under its row's source and event id, once however often
    /// the row is refused again.
    #[tokio::test]
    async fn a_row_refused_again_is_kept_once_under_its_event() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO outbox (id, source, event_id, crm_record, payload, state, attempts,
                                 next_attempt_at, received_at, updated_at)
             VALUES (7, 'hubspot', '1:9:created', 'hubspot:1:9', '{}', 'in_flight', 2, 0, 0, 0)",
        )
        .execute(&pool)
        .await
        .expect("row");
        let refusal = Refusal {
            code: "no_email_in_crm",
            field: "properties.email",
            record_id: Some("9".into()),
        };
        let mut conn = pool.acquire().await.expect("connection");
        insert_for_row(&mut conn, 7, &refusal, 5)
            .await
            .expect("kept");
        insert_for_row(&mut conn, 7, &refusal, 6)
            .await
            .expect("kept again");
        drop(conn);
        let kept = list(&pool, &RefusedFilter::default(), None, 10)
            .await
            .expect("refused");
        let kept: Vec<_> = kept
            .iter()
            .map(|r| {
                let (source, event_id) = (r.source.as_str(), r.event_id.as_deref());
                let (record_id, outbox_id) = (r.record_id.as_deref(), r.outbox_id);
                let (reason, field) = (r.reason.as_str(), r.field.as_str());
                (
                    source,
                    event_id,
                    record_id,
                    outbox_id,
                    reason,
                    field,
                    r.refused_at,
                )
            })
            .collect();
        let want = (
            "hubspot",
            Some("1:9:created"),
            Some("9"),
            Some(7),
            "no_email_in_crm",
            "properties.email",
            5,
        );
        assert_eq!(kept, [want]);
    }
}
