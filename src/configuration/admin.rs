//! `[admin]`: the operator's token for the look-up endpoints and the console; unset, they answer
//! 404.

use serde::Deserialize;

use super::error::{ConfigError, above_zero};
use super::secret::InventedSecret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Unset: the admin endpoints answer 404. Its rules (non-blank, 16 characters) are the type's.
    pub token: Option<InventedSecret>,
    /// How long a console login lasts (the session cookie's Max-Age and the stored expiry).
    pub console_session_secs: u64,
}

impl AdminSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        above_zero("admin.console_session_secs", self.console_session_secs > 0)
    }
}
