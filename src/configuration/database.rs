//! `[database]`: which backend (a SQLite file, or a PostgreSQL server several bridges share), how
//! hard each SQLite commit is synced, and the pool over it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::duration::millis;
use super::error::{ConfigError, above_zero};
use super::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=…`; unset means the
    /// SQLite file at `path`. A secret: a PostgreSQL URL usually carries a password.
    #[serde(default)]
    pub url: Option<Secret>,
    pub path: PathBuf,
    pub synchronous: Synchronous,
    #[serde(rename = "busy_timeout_ms", deserialize_with = "millis")]
    pub busy_timeout: Duration,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

/// Where the bridge keeps its state, as `database.url` (or `database.path`) says.
#[derive(Clone)]
pub enum Backend {
    /// The embedded default: one file, one bridge.
    Sqlite(PathBuf),
    /// A server that several bridges may share; the URL as given (it may hold a password).
    Postgres(SecretString),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Self::Postgres(_) => f.write_str("Postgres([REDACTED])"),
        }
    }
}

const SQLITE_PREFIXES: [&str; 2] = ["sqlite://", "sqlite:"];
const POSTGRES_PREFIXES: [&str; 2] = ["postgres://", "postgresql://"];

impl DatabaseSettings {
    /// Every command opens the pool, `migrate` and `healthcheck` too.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("database.max_connections", self.max_connections > 0)?;
        self.backend().map(|_| ())
    }

    /// The backend `url` names, or the SQLite file at `path` without one. The error never
    /// repeats the URL (it may carry a password).
    pub fn backend(&self) -> Result<Backend, ConfigError> {
        let Some(url) = &self.url else {
            return Ok(Backend::Sqlite(self.path.clone()));
        };
        let text = url.expose_secret();
        if let Some(path) = SQLITE_PREFIXES.iter().find_map(|p| text.strip_prefix(p)) {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(ConfigError::key(
                    "database.url",
                    "names no SQLite file (write sqlite://PATH)",
                ));
            }
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        if POSTGRES_PREFIXES.iter().any(|p| text.starts_with(p)) {
            return Ok(Backend::Postgres(url.to_secret_string()));
        }
        Err(ConfigError::key(
            "database.url",
            "must start with sqlite:// or postgres:// (the value is not repeated: it may hold a password)",
        ))
    }

    /// The SQLite file, when the backend is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self.backend() {
            Ok(Backend::Sqlite(path)) => Some(path),
            _ => None,
        }
    }

    /// These settings with the SQLite file `path` (what the SQLite backend opens).
    pub fn with_sqlite_path(&self, path: &Path) -> Self {
        Self {
            url: None,
            path: path.to_owned(),
            ..self.clone()
        }
    }
}

impl Backend {
    /// For logs and `/status`: the file, or the PostgreSQL host, port and database without the
    /// user or password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite {}", path.display()),
            Self::Postgres(url) => {
                let text = url.expose_secret();
                let rest = POSTGRES_PREFIXES
                    .iter()
                    .find_map(|p| text.strip_prefix(p))
                    .unwrap_or_default();
                let place = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
                let place = place.split('?').next().unwrap_or_default();
                format!("postgres {place}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: Option<&str>) -> DatabaseSettings {
        DatabaseSettings {
            url: url.map(|u| Secret::new(u).expect("non-blank")),
            path: PathBuf::from("./data/bridge.sqlite"),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            migrate_on_start: true,
        }
    }

    #[test]
    fn the_url_chooses_the_backend_and_path_is_the_default() {
        assert!(
            matches!(settings(None).backend(), Ok(Backend::Sqlite(p)) if p == Path::new("./data/bridge.sqlite"))
        );
        assert!(
            matches!(settings(Some("sqlite:///var/lib/b.sqlite")).backend(), Ok(Backend::Sqlite(p)) if p == Path::new("/var/lib/b.sqlite"))
        );
        assert!(
            matches!(settings(Some("sqlite://data/b.sqlite?mode=rwc")).backend(), Ok(Backend::Sqlite(p)) if p == Path::new("data/b.sqlite"))
        );
        for url in ["postgres://u:p@db:5432/bridge", "postgresql://db/bridge"] {
            assert!(matches!(
                settings(Some(url)).backend(),
                Ok(Backend::Postgres(_))
            ));
        }
    }

    #[test]
    fn a_wrong_url_is_a_configuration_error_that_does_not_repeat_it() {
        for url in ["mysql://u:hunter2@db/x", "sqlite://", "hunter2"] {
            let error = settings(Some(url)).validate().expect_err(url).to_string();
            assert!(error.contains("`database.url`"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn the_description_names_the_place_never_the_password() {
        let backend = settings(Some(
            "postgres://bridge:hunter2@db.internal:5432/bridge?sslmode=require",
        ))
        .backend()
        .expect("backend");
        assert_eq!(backend.describe(), "postgres db.internal:5432/bridge");
        assert!(!format!("{backend:?}").contains("hunter2"));
    }
}
