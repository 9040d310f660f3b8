//! Knowing the database is still the one we opened. A file deleted or replaced under a running
//! bridge stops every acknowledgement (and delivery); a start that would create an empty database
//! where one existed before is refused, because an empty ledger means guests created twice.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sqlx::SqlitePool;

/// The marker beside the database: `.bridge.sqlite.id` for `bridge.sqlite`. It survives
/// `rm bridge.sqlite*` (a leading dot), and holds the id of the database created there.
fn marker_path(database: &Path) -> PathBuf {
    let name = database
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bridge.sqlite".into());
    database.with_file_name(format!(".{name}.id"))
}

/// Before connecting: refuses to create a database where the marker says one was.
pub fn refuse_silent_recreation(database: &Path) -> anyhow::Result<()> {
    let marker = marker_path(database);
    if database.exists() || !marker.exists() {
        return Ok(());
    }
    anyhow::bail!(
        "The database {} is missing, but {} says one was created there before. Starting \
         would create an empty database: every stored event and the guest ledger would be gone, \
         and guests could be created twice. Restore the database file (with its -wal file, if \
         any), or, to start from an empty database on purpose, delete {}.",
        database.display(),
        marker.display(),
        marker.display()
    )
}

/// After migrations: the marker must name this database; a database without a marker (the
/// first start, or one made before markers existed) gets one.
pub async fn adopt(pool: &SqlitePool, database: &Path) -> anyhow::Result<()> {
    let id: String = sqlx::query_scalar("SELECT database_id FROM database_identity WHERE id = 1")
        .fetch_one(pool)
        .await
        .context("Failed to read the database id")?;
    let marker = marker_path(database);
    match std::fs::read_to_string(&marker) {
        Ok(recorded) if recorded.trim() == id => Ok(()),
        Ok(recorded) => anyhow::bail!(
            "The database {} is not the one created there (its id is {id}, {} names {}): it was \
             replaced. Put the right file back, or, to use this database on purpose, delete {}.",
            database.display(),
            marker.display(),
            recorded.trim(),
            marker.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{id}\n"))
                .with_context(|| format!("Failed to write {}", marker.display()))?;
            tracing::warn!(
                database = %database.display(),
                marker = %marker.display(),
                "Using a database this directory had no record of (a first start creates an empty one)"
            );
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("Failed to read {}", marker.display())),
    }
}

/// The database file as opened: its device and inode.
#[derive(Debug)]
pub struct DatabaseFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    lost: AtomicBool,
}

/// The database file is no longer the one the bridge opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the database file {0} was deleted or replaced while the bridge was running")]
pub struct FileLost(String);

impl DatabaseFile {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            lost: AtomicBool::new(false),
        })
    }

    /// The WAL beside the file (`bridge.sqlite-wal`).
    pub fn wal_path(&self) -> PathBuf {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    /// Whether an earlier [`Self::check`] found the file lost (no `stat`).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether the path still names the file we write to: one `stat`, cheap beside a commit.
    /// Once lost, always lost: only a restart (on the restored file) may trust it again.
    pub fn check(&self) -> Result<(), FileLost> {
        let lost = || FileLost(self.path.display().to_string());
        if self.is_lost() {
            return Err(lost());
        }
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino);
        if same {
            return Ok(());
        }
        if !self.lost.swap(true, Ordering::Relaxed) {
            tracing::error!(
                database = %self.path.display(),
                "The database file was deleted or replaced while the bridge was running: \
                 nothing more is acknowledged (503) or delivered. Restore the file, then restart."
            );
        }
        Err(lost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_is_lost_for_good() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.sqlite");
        std::fs::write(&path, "one").expect("write");
        let file = DatabaseFile::open(&path).expect("open");
        assert!(file.check().is_ok());
        std::fs::remove_file(&path).expect("rm");
        assert!(file.check().is_err());
        std::fs::write(&path, "another").expect("write");
        assert!(file.check().is_err(), "a new file at the path is not ours");
    }

    #[test]
    fn a_missing_database_with_a_marker_is_not_silently_recreated() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.sqlite");
        assert!(refuse_silent_recreation(&path).is_ok(), "a first start");
        std::fs::write(marker_path(&path), "abc\n").expect("marker");
        let err = refuse_silent_recreation(&path).expect_err("refused");
        assert!(err.to_string().contains(".b.sqlite.id"), "{err}");
        std::fs::write(&path, "").expect("restored");
        assert!(refuse_silent_recreation(&path).is_ok());
    }
}
