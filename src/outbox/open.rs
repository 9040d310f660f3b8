//! Opening the backend `database.url` names (SQLite by default): its [`Store`] and the group-commit
//! writer over it, so the rest of the bridge never names a backend.

use std::sync::Arc;

use crate::configuration::{Backend, DatabaseSettings};
use crate::outbox::Store;
use crate::outbox::postgres::{self, PgStore, writer::PgCommit};
use crate::outbox::sqlite::{self, SqliteStore, writer::SqliteCommit};
use crate::outbox::writer::{self, WriterHandle, WriterSetup, WriterTask};

/// An open backend: what the worker and the endpoints use, and ingest's way in.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub writer_task: WriterTask,
}

/// Opens the database for serving (migrated first when `database.migrate_on_start`) and starts
/// its writer.
pub async fn open(settings: &DatabaseSettings, setup: WriterSetup) -> anyhow::Result<Opened> {
    let migrate = settings.migrate_on_start;
    match settings.backend()? {
        Backend::Sqlite(path) => {
            let settings = settings.with_sqlite_path(&path);
            let store = SqliteStore::open(&settings, migrate).await?;
            let commit = SqliteCommit {
                conn: sqlite::open_writer_connection(&settings).await?,
                file: store.file(),
                turn: store.write_turn(),
            };
            let (writer, writer_task) = writer::spawn(setup, commit);
            Ok(Opened {
                store: Arc::new(store),
                writer,
                writer_task,
            })
        }
        Backend::Postgres(url) => {
            let store = PgStore::open(&url, settings, migrate).await?;
            let commit = PgCommit {
                pool: postgres::open_pool(&url, settings, 1).await?,
            };
            let (writer, writer_task) = writer::spawn(setup, commit);
            Ok(Opened {
                store: Arc::new(store),
                writer,
                writer_task,
            })
        }
    }
}

/// The store alone, without a writer: for tools and tests that read or act as another worker.
pub async fn open_store(
    settings: &DatabaseSettings,
    migrate: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match settings.backend()? {
        Backend::Sqlite(path) => {
            Arc::new(SqliteStore::open(&settings.with_sqlite_path(&path), migrate).await?)
        }
        Backend::Postgres(url) => Arc::new(PgStore::open(&url, settings, migrate).await?),
    })
}

/// `tallyfy-bridge migrate`: applies the backend's migrations.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    match settings.backend()? {
        Backend::Sqlite(path) => sqlite::migrate_file(&settings.with_sqlite_path(&path)).await,
        Backend::Postgres(url) => postgres::migrate_database(&url, settings).await,
    }
}
