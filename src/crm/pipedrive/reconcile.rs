//! Reconcile and connect for Pipedrive: the persons its API lists ([`PersonsLister`]) and its
//! webhook subscription ([`PipedriveWebhooks`]), built from `[sources.pipedrive]`.

use anyhow::Context;

use super::api::Api;
use super::pacing::Pacing;
pub use super::persons::{MAX_PAGE, PersonsLister};
pub use super::webhooks::PipedriveWebhooks;
use crate::configuration::PipedriveSettings;
use crate::crm::listing::{Lister, Subscriptions};
use crate::metrics::Metrics;

/// The lister of this CRM, when its API credentials are configured: full pages, waiting out
/// rate limits on tokio's clock.
pub fn lister(
    settings: &PipedriveSettings,
    metrics: &Metrics,
) -> anyhow::Result<Option<Box<dyn Lister>>> {
    Ok(
        PersonsLister::new(settings, metrics, MAX_PAGE, Pacing::default())?
            .map(|lister| Box::new(lister) as Box<dyn Lister>),
    )
}

/// The webhook subscription API for `target_url` (the full URL of this bridge's webhook), when
/// the credentials it needs are configured.
pub fn subscriptions(
    settings: &PipedriveSettings,
    target_url: &str,
) -> anyhow::Result<Option<Box<dyn Subscriptions>>> {
    Ok(webhooks(settings, target_url, Pacing::default())?
        .map(|webhooks| Box::new(webhooks) as Box<dyn Subscriptions>))
}

/// The same with `pacing`; `None` unless the API token and the webhook's Basic credentials are
/// all set (the webhook must carry the credentials the adapter checks).
pub fn webhooks(
    settings: &PipedriveSettings,
    target_url: &str,
    pacing: Pacing,
) -> anyhow::Result<Option<PipedriveWebhooks>> {
    let (Some(token), Some(user), Some(password)) = (
        &settings.api_token,
        settings.username.as_deref(),
        &settings.password,
    ) else {
        return Ok(None);
    };
    reqwest::Url::parse(target_url).context("Failed to parse the Pipedrive webhook's URL")?;
    let api = Api::new(
        &settings.api_base_url,
        &token.to_secret_string(),
        settings.request_timeout,
    )?;
    Ok(Some(PipedriveWebhooks::new(
        api,
        pacing,
        target_url,
        user,
        password.to_secret_string(),
    )))
}
