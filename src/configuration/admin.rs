//! `[admin]`: the operator's token for the look-up endpoints; unset, they answer 404.

use serde::Deserialize;

use super::secret::InventedSecret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Unset: the admin endpoints answer 404. Its rules (non-blank, 16 characters) are the type's.
    pub token: Option<InventedSecret>,
}
