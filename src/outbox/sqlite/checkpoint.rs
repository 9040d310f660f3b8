//! Keeping the WAL short: webhook commits never checkpoint (`wal_autocheckpoint` is off), so a
//! background task copies the WAL into the database file every second.

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::Mutex;

/// `journal_size_limit`, in bytes: when SQLite starts the WAL over, the commit that does so
/// cuts a file grown past this back to it. A WAL still bigger was not started over: retention
/// truncates it (see `prune`).
pub(super) const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Copies committed WAL pages into the database file, in two passes, so that SQLite starts the
/// WAL over at the next write instead of appending to it: it does so only once every frame is
/// copied. The first pass copies the bulk beside writers; the second, in the write `turn`, the
/// frames committed meanwhile (usually a few pages). With one pass under a steady load a commit
/// always landed during the copy, so the WAL was never complete and grew by every page every
/// commit wrote, about 50 MB/s at 500 events/s (15 GB between two prunes in issue 18's soak),
/// until retention's truncation stopped webhooks for seconds to empty it.
///
/// `PASSIVE` never waits for (or blocks) SQLite's readers or writers; a reader on an older
/// snapshot only makes the copy stop short, and the next second tries again.
pub(super) async fn copy_wal(pool: &SqlitePool, turn: &Mutex<()>) -> anyhow::Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .context("Failed to checkpoint the WAL")?;
    passive(&mut conn).await?;
    let _turn = turn.lock().await;
    passive(&mut conn).await
}

/// One copy of the WAL into the file beside readers and writers.
pub(super) async fn passive(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .await
        .context("Failed to checkpoint the WAL")?;
    Ok(())
}

/// At shutdown: copies the whole WAL into the file and empties it.
pub(super) async fn empty_wal(pool: &SqlitePool) -> anyhow::Result<()> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .context("Failed to checkpoint the WAL")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::configuration::{DatabaseSettings, Synchronous};

    /// Under writes without a pause (taking the turn, as ingest's group commits and the
    /// worker's results do), the WAL must still be started over: its file stays a fraction of
    /// what the writes added up to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_while_writes_keep_coming() {
        let dir = tempfile::tempdir().expect("dir");
        let settings = DatabaseSettings {
            url: None,
            path: dir.path().join("wal.sqlite"),
            synchronous: Synchronous::Full,
            busy_timeout: std::time::Duration::from_secs(5),
            max_connections: 4,
            migrate_on_start: true,
        };
        let pool = super::super::open_pool(&settings).await.expect("open");
        super::super::migrate(&pool).await.expect("migrate");
        let turn = Arc::new(Mutex::new(()));
        let done = Arc::new(AtomicBool::new(false));
        const COMMITS: usize = 3_000;
        let writer = tokio::spawn({
            let (pool, turn, done) = (pool.clone(), turn.clone(), done.clone());
            async move {
                for i in 0..COMMITS {
                    let _turn = turn.lock().await;
                    sqlx::query(
                        "INSERT INTO outbox (source, email, payload, next_attempt_at, received_at, updated_at)
                         VALUES ('canonical', ?1, zeroblob(1000), 0, 0, 0)",
                    )
                    .bind(format!("u{i}@example.com"))
                    .execute(&pool)
                    .await
                    .expect("insert");
                }
                done.store(true, Ordering::Relaxed);
            }
        });
        let mut checkpoints = 0;
        while !done.load(Ordering::Relaxed) {
            copy_wal(&pool, &turn).await.expect("checkpoint");
            checkpoints += 1;
        }
        writer.await.expect("writer");

        let wal = std::fs::metadata(dir.path().join("wal.sqlite-wal"))
            .expect("wal")
            .len();
        // Each commit appends at least two pages (the row and its indexes), 8 KB and more.
        let written = COMMITS as u64 * 8 * 1024;
        assert!(
            wal < written / 10,
            "WAL {wal} bytes after {written} bytes written and {checkpoints} checkpoints"
        );
    }
}
