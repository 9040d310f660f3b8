//! The credentials `[tallyfy]` describes: the personal access token, or the OAuth grant of
//! `tallyfy.auth` with its client (and user).

use anyhow::Context;

use super::credentials::{Credentials, Now};
use super::oauth::OAuthConfig;
use crate::configuration::{TallyfyAuth, TallyfySettings};

impl Credentials {
    /// Settings are validated first, so a missing key here is a bug, reported by its key anyway.
    pub fn from_settings(tallyfy: &TallyfySettings, now: Now) -> anyhow::Result<Self> {
        let missing = |key: &str| anyhow::anyhow!("invalid configuration: `{key}` is required");
        let user = match tallyfy.auth {
            TallyfyAuth::Token => {
                let token = tallyfy
                    .token
                    .as_ref()
                    .ok_or_else(|| missing("tallyfy.token"))?;
                return Self::personal(token.to_secret_string(), now).context("tallyfy.token");
            }
            TallyfyAuth::ClientCredentials => None,
            TallyfyAuth::Password => Some((
                tallyfy
                    .username
                    .clone()
                    .ok_or_else(|| missing("tallyfy.username"))?,
                tallyfy
                    .password
                    .as_ref()
                    .ok_or_else(|| missing("tallyfy.password"))?
                    .to_secret_string(),
            )),
        };
        let config = OAuthConfig {
            token_url: tallyfy.token_url.trim().to_owned(),
            client_id: tallyfy
                .client_id
                .clone()
                .ok_or_else(|| missing("tallyfy.client_id"))?,
            client_secret: tallyfy
                .client_secret
                .as_ref()
                .ok_or_else(|| missing("tallyfy.client_secret"))?
                .to_secret_string(),
            user,
        };
        Self::oauth(
            config,
            tallyfy.connect_timeout,
            tallyfy.request_timeout,
            now,
        )
    }
}
