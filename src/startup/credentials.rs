//! The Tallyfy credentials from `[tallyfy]`: the personal access token, or the OAuth grant of
//! `tallyfy.auth`, on the application's clock; the expiry warning is logged at start.

use std::sync::Arc;

use anyhow::Context;

use crate::configuration::{TallyfyAuth, TallyfySettings};
use crate::delivery::policy::Clock;
use crate::metrics::Metrics;
use crate::tallyfy::{Credentials, OAuthConfig};

/// Settings are validated first, so a missing key here is a bug, reported by its key anyway.
pub(super) fn build(
    tallyfy: &TallyfySettings,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Credentials>> {
    let now: crate::tallyfy::Now = Arc::new(move || clock.now_ms());
    let missing = |key: &str| anyhow::anyhow!("invalid configuration: `{key}` is required");
    let credentials = match tallyfy.auth {
        TallyfyAuth::Token => {
            let token = tallyfy
                .token
                .as_ref()
                .ok_or_else(|| missing("tallyfy.token"))?;
            Credentials::personal(token.to_secret_string(), now).context("tallyfy.token")?
        }
        mode @ (TallyfyAuth::ClientCredentials | TallyfyAuth::Password) => {
            let client_id = tallyfy.client_id.clone();
            let client_secret = tallyfy.client_secret.as_ref();
            let user = match mode {
                TallyfyAuth::Password => {
                    let username = tallyfy.username.clone();
                    let password = tallyfy.password.as_ref();
                    Some((
                        username.ok_or_else(|| missing("tallyfy.username"))?,
                        password
                            .ok_or_else(|| missing("tallyfy.password"))?
                            .to_secret_string(),
                    ))
                }
                _ => None,
            };
            let config = OAuthConfig {
                token_url: tallyfy.token_url.trim().to_owned(),
                client_id: client_id.ok_or_else(|| missing("tallyfy.client_id"))?,
                client_secret: client_secret
                    .ok_or_else(|| missing("tallyfy.client_secret"))?
                    .to_secret_string(),
                user,
            };
            Credentials::oauth(
                config,
                tallyfy.connect_timeout,
                tallyfy.request_timeout,
                now,
            )?
        }
    };
    let credentials = Arc::new(credentials.with_metrics(metrics.clone()));
    tracing::info!(
        mode = credentials.mode().as_str(),
        "Tallyfy credentials configured"
    );
    credentials.warn_if_expiring();
    Ok(credentials)
}
