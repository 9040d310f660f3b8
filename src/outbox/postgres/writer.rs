//! The PostgreSQL side of the group commit ([`crate::outbox::writer`]): one transaction per
//! batch on a pool of one connection of its own, which the pool re-opens after the server
//! restarts (a batch that fails meanwhile answers 503 and the CRM sends it again).

use anyhow::Context;
use sqlx::PgPool;

use super::{append, refused};
use crate::outbox::writer::{Accepted, Commit, NewEvent, NewRefusal};
use crate::time::now_ms;

/// The writer's own pool (one connection, never shared with reads).
pub struct PgCommit {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl Commit for PgCommit {
    async fn commit(
        &mut self,
        events: &[&NewEvent],
        refusals: &[&NewRefusal],
    ) -> anyhow::Result<Vec<Accepted>> {
        commit(&self.pool, events, refusals).await
    }

    async fn close(self) {
        self.pool.close().await;
    }
}

/// Writes `events` and `refusals` in one transaction; on error nothing of it is stored (the
/// transaction rolls back when dropped). Ok only once COMMIT succeeded: a 2xx follows only a
/// durable commit. Other replicas' writers commit at the same time: `append` and `refused` say
/// what keeps one row per event id and per CRM record across them.
async fn commit(
    pool: &PgPool,
    events: &[&NewEvent],
    refusals: &[&NewRefusal],
) -> anyhow::Result<Vec<Accepted>> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin the outbox transaction")?;
    let now = now_ms();
    let accepted = if events.is_empty() {
        Vec::new()
    } else {
        append::insert_batch(&mut tx, events, now).await?
    };
    if !refusals.is_empty() {
        refused::insert_batch(&mut tx, refusals, now).await?;
    }
    tx.commit()
        .await
        .context("Failed to commit the outbox transaction")?;
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::outbox::CrmRecord;
    use crate::outbox::writer::commit_each_if_needed;

    fn refusal(event_id: &str) -> NewRefusal {
        NewRefusal {
            source: "pipedrive",
            event_id: Some(event_id.into()),
            record_id: Some("4711".into()),
            notification_id: None,
            reason: "missing_field",
            field: "current.email".into(),
        }
    }

    fn event(email: Option<&str>) -> NewEvent {
        NewEvent {
            source: "canonical",
            event_id: None,
            email: email.map(str::to_owned),
            crm_record: None,
            record: None,
            payload: "{}".into(),
        }
    }

    async fn count(pool: &PgPool, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pool)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn events_and_refusals_share_a_commit_and_a_bad_entry_fails_only_itself() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let mut backend = PgCommit { pool: pool.clone() };
        // One commit: an event, and a refusal sent twice (the copy keeps nothing more).
        let (good, kept) = (event(Some("a@x.io")), refusal("1:person:4711:created"));
        let written = commit_each_if_needed(&mut backend, &[&good], &[&kept, &kept]).await;
        assert!(written.events.iter().all(Result::is_ok));
        assert_eq!(written.refusals.len(), 2);
        assert!(written.refusals.iter().all(Result::is_ok));
        assert_eq!(count(&pool, "outbox").await, 1);
        assert_eq!(count(&pool, "refused").await, 1);

        // A row with neither email nor CRM record breaks the table's CHECK: the batch rolls
        // back, then each entry is committed alone and only the bad one fails.
        let bad = event(None);
        let other = refusal("1:person:4712:created");
        let written = commit_each_if_needed(&mut backend, &[&bad, &good], &[&other]).await;
        assert!(written.events[0].is_err());
        assert!(written.events[1].is_ok());
        assert!(written.refusals[0].is_ok());
        assert_eq!(count(&pool, "outbox").await, 2);
        assert_eq!(count(&pool, "refused").await, 2);

        // One commit is all or nothing: a refusal sharing it with the bad event is not kept.
        let third = refusal("1:person:4713:created");
        assert!(commit(&pool, &[&bad], &[&third]).await.is_err());
        assert_eq!(count(&pool, "refused").await, 2);
        assert!(commit(&pool, &[], &[&third]).await.is_ok());
        assert_eq!(count(&pool, "refused").await, 3);
        // The trigger-kept counters rolled back with their rows.
        let queued: i64 = sqlx::query_scalar("SELECT n FROM outbox_counts WHERE state = 'queued'")
            .fetch_one(&pool)
            .await
            .expect("counts");
        assert_eq!(queued, 2);
    }

    /// A second pool on the same database, as another replica's writer has.
    async fn replica(pool: &PgPool) -> PgCommit {
        let options = pool.connect_options().as_ref().clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("second pool");
        PgCommit { pool }
    }

    /// Two replicas' writers commit the same CRM event at the same instant, a hundred times:
    /// each time one row, one `Stored` and one `Duplicate` of it, whether they share the event
    /// id or only the CRM record (a webhook in one, a reconcile in the other).
    #[tokio::test]
    async fn two_replicas_committing_one_event_at_once_store_it_once() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let (mut a, mut b) = (replica(&pool).await, replica(&pool).await);
        for round in 0..100 {
            let record = format!("{round}");
            let crm_record = Some(format!("hubspot:1:{round}"));
            let webhook = NewEvent {
                source: "hubspot",
                event_id: Some(format!("1:{round}:created")),
                email: None,
                crm_record: crm_record.clone(),
                payload: "{}".into(),
                record: Some(CrmRecord::unseen(record.clone())),
            };
            let other = if round % 2 == 0 {
                // The CRM's retry of the same event, through the other replica.
                webhook.clone()
            } else {
                // The same record, listed by the other replica's reconcile.
                NewEvent {
                    event_id: None,
                    ..webhook.clone()
                }
            };
            let (mine, theirs) = ([&webhook], [&other]);
            let (first, second) = tokio::join!(a.commit(&mine, &[]), b.commit(&theirs, &[]));
            let answers = [first.expect("a")[0], second.expect("b")[0]];
            let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox WHERE crm_record = $1")
                .bind(&crm_record)
                .fetch_all(&pool)
                .await
                .expect("rows");
            let [id] = rows[..] else {
                panic!("round {round}: rows {rows:?}, answers {answers:?}");
            };
            let mut sorted = answers;
            sorted.sort_by_key(|a| matches!(a, Accepted::Duplicate { .. }));
            assert_eq!(
                sorted,
                [Accepted::Stored { id }, Accepted::Duplicate { id }],
                "round {round}"
            );
            let remembered: i64 = sqlx::query_scalar(
                "SELECT outbox_id FROM crm_records WHERE source = 'hubspot' AND record_id = $1",
            )
            .bind(&record)
            .fetch_one(&pool)
            .await
            .expect("record");
            assert_eq!(remembered, id, "round {round}");
        }
        a.close().await;
        b.close().await;
    }

    /// Two batches sharing event ids in opposite orders, committed at once by two replicas, both
    /// commit (no deadlock): each id is one row, and every answer names it.
    #[tokio::test]
    async fn two_replicas_sharing_event_ids_in_any_order_both_commit() {
        let Some(pool) = super::super::test_pool().await else {
            return;
        };
        let (mut a, mut b) = (replica(&pool).await, replica(&pool).await);
        for round in 0..30 {
            let events: Vec<NewEvent> = (0..5)
                .map(|n| NewEvent {
                    source: "canonical",
                    event_id: Some(format!("{round}:{n}")),
                    email: Some(format!("{round}.{n}@x.io")),
                    crm_record: None,
                    payload: "{}".into(),
                    record: None,
                })
                .collect();
            let forward: Vec<&NewEvent> = events.iter().collect();
            let backward: Vec<&NewEvent> = events.iter().rev().collect();
            let (first, second) = tokio::join!(a.commit(&forward, &[]), b.commit(&backward, &[]));
            let (first, second) = (first.expect("a"), second.expect("b"));
            let stored: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_id LIKE $1")
                    .bind(format!("{round}:%"))
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            assert_eq!(stored, 5, "round {round}");
            for (n, answer) in first.iter().enumerate() {
                let other = second[4 - n];
                assert_eq!(answer.id(), other.id(), "round {round}, event {n}");
                let stored = [*answer, other]
                    .iter()
                    .filter(|a| matches!(a, Accepted::Stored { .. }))
                    .count();
                assert_eq!(stored, 1, "round {round}, event {n}");
            }
        }
        a.close().await;
        b.close().await;
    }
}
