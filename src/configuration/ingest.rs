//! `[ingest]` and `[ingest.auth]`: the group-commit writer's bounds, and how a sender of the
//! bridge's own format (`/webhooks/contacts`) proves it is the CRM.

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::error::{ConfigError, above_zero};
use super::secret::{InventedSecret, Secret};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub max_batch: usize,
    pub queue_capacity: usize,
    pub auth: InboundAuthSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundAuthSettings {
    pub mode: AuthMode,
    pub signing_secret: Option<Secret>,
    pub shared_secret: Option<InventedSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Signature,
    SharedSecret,
    None,
    /// `/webhooks/contacts` answers 404: a deployment that takes only CRM webhooks.
    Disabled,
}

impl IngestSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        above_zero("ingest.max_batch", self.max_batch > 0)?;
        above_zero("ingest.queue_capacity", self.queue_capacity > 0)
    }
}

impl InboundAuthSettings {
    /// The mode's secret is set, and a signing secret is a usable Standard Webhooks key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match self.mode {
            AuthMode::Signature => match &self.signing_secret {
                None => Err(ConfigError::key(
                    "ingest.auth.signing_secret",
                    "is required when ingest.auth.mode = \"signature\" (set BRIDGE__INGEST__AUTH__SIGNING_SECRET)",
                )),
                Some(secret) if !is_signing_key(secret.expose_secret()) => Err(ConfigError::key(
                    "ingest.auth.signing_secret",
                    &format!(
                        "must be whsec_ followed by at least {SIGNING_KEY_MIN_BYTES} bytes in base64 (make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\")"
                    ),
                )),
                Some(_) => Ok(()),
            },
            AuthMode::SharedSecret if self.shared_secret.is_none() => Err(ConfigError::key(
                "ingest.auth.shared_secret",
                "is required when ingest.auth.mode = \"shared_secret\" (set BRIDGE__INGEST__AUTH__SHARED_SECRET)",
            )),
            _ => Ok(()),
        }
    }
}

/// The least key size of a Standard Webhooks secret (the specification: 24 to 64 bytes). A
/// shorter one, `whsec_` alone above all (an empty key), is a key anyone can sign with.
const SIGNING_KEY_MIN_BYTES: usize = 24;

fn is_signing_key(secret: &str) -> bool {
    use base64::Engine;
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .is_ok_and(|key| key.len() >= SIGNING_KEY_MIN_BYTES)
}
