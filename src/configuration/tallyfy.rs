//! `[tallyfy]`: the API guests are created in, the credentials the worker uses (a personal access
//! token, or an OAuth grant renewed by the bridge), and how long one call may take.

use std::time::Duration;

use serde::Deserialize;

use super::duration::millis;
use super::error::ConfigError;
use super::secret::{Secret, non_blank};

/// How the bridge gets the bearer token it sends to Tallyfy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TallyfyAuth {
    /// `tallyfy.token`, a personal access token used as it is.
    #[default]
    Token,
    /// `grant_type=client_credentials` with `tallyfy.client_id` and `tallyfy.client_secret`.
    ClientCredentials,
    /// `grant_type=password` (then `refresh_token`) for `tallyfy.username`.
    Password,
}

impl TallyfyAuth {
    /// The name `tallyfy.auth` takes and `/status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyfySettings {
    pub base_url: String,
    #[serde(default, deserialize_with = "non_blank")]
    pub org_id: Option<String>,
    #[serde(default)]
    pub auth: TallyfyAuth,
    pub token: Option<Secret>,
    /// The OAuth token endpoint (`client_credentials` and `password` modes).
    pub token_url: String,
    #[serde(default, deserialize_with = "non_blank")]
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    #[serde(default, deserialize_with = "non_blank")]
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout: Duration,
    /// A whole call, connect to last body byte; the delivery lease must cover two of them.
    #[serde(rename = "request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout: Duration,
}

/// "is required for delivery with tallyfy.auth = …", with the variable that sets it.
fn required(key: &str, auth: TallyfyAuth) -> ConfigError {
    let env = format!("BRIDGE__{}", key.replace('.', "__").to_uppercase());
    let why = match auth {
        TallyfyAuth::Token => "is required for delivery".to_owned(),
        other => format!(
            "is required for delivery with tallyfy.auth = \"{}\"",
            other.as_str()
        ),
    };
    ConfigError::key(
        key,
        &format!("{why} (set {env}, or try the bridge with `serve --sandbox`)"),
    )
}

impl TallyfySettings {
    /// What the delivery worker cannot start without (ingest alone needs none of it).
    pub(super) fn validate_for_delivery(&self) -> Result<(), ConfigError> {
        // Blank values never load (`non_blank`, `Secret`), so set means usable.
        if self.org_id.is_none() {
            return Err(required("tallyfy.org_id", self.auth));
        }
        let needs: &[(&str, bool)] = match self.auth {
            TallyfyAuth::Token => &[("tallyfy.token", self.token.is_some())],
            TallyfyAuth::ClientCredentials => &[
                ("tallyfy.client_id", self.client_id.is_some()),
                ("tallyfy.client_secret", self.client_secret.is_some()),
            ],
            TallyfyAuth::Password => &[
                ("tallyfy.client_id", self.client_id.is_some()),
                ("tallyfy.client_secret", self.client_secret.is_some()),
                ("tallyfy.username", self.username.is_some()),
                ("tallyfy.password", self.password.is_some()),
            ],
        };
        if let Some((key, _)) = needs.iter().find(|(_, set)| !set) {
            return Err(required(key, self.auth));
        }
        if self.auth != TallyfyAuth::Token {
            let url = self.token_url.trim();
            let scheme_ok = reqwest::Url::parse(url)
                .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https"));
            if !scheme_ok {
                return Err(ConfigError::key(
                    "tallyfy.token_url",
                    "must be an http(s) URL, e.g. https://go.tallyfy.com/oauth/token",
                ));
            }
        }
        Ok(())
    }
}
