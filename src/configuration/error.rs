//! The one kind of configuration error: a line that names the key at fault, so start-up can
//! print it and stop.

/// A setting that cannot be used, with the key that names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// `` `key` problem ``: how every check of ours reports.
    pub(crate) fn key(key: &str, problem: &str) -> Self {
        Self(format!("`{key}` {problem}"))
    }

    /// A problem that belongs to no single key (a missing per-environment file).
    pub(super) fn other(message: String) -> Self {
        Self(message)
    }

    /// Our own checks inside deserialisation (a blank secret) read like the others: the key
    /// first. `config`'s own messages ("invalid type: … for key `http.port`") stay as they are.
    pub(super) fn from_load(error: config::ConfigError) -> Self {
        match error {
            config::ConfigError::At {
                error,
                key: Some(key),
                origin,
            } if matches!(*error, config::ConfigError::Message(_)) => {
                let place = origin.map(|o| format!(" (in {o})")).unwrap_or_default();
                Self(format!("`{key}` {error}{place}"))
            }
            other => Self(other.to_string()),
        }
    }
}

/// `Ok` when `holds`, else the error for `key` that says it must be above 0.
pub(super) fn above_zero(key: &str, holds: bool) -> Result<(), ConfigError> {
    if holds {
        Ok(())
    } else {
        Err(ConfigError::key(key, "must be above 0"))
    }
}
