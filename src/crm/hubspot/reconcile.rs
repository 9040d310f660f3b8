//! Reconcile and connect for HubSpot: the contacts its search lists ([`ContactSearch`]) and the
//! app's webhook subscriptions ([`AppWebhooks`]), each when its credentials are configured.

use crate::configuration::HubSpotSettings;
use crate::crm::listing::{Lister, Subscriptions};
use crate::metrics::Metrics;

use super::search::{ContactSearch, SearchLimits};
use super::webhooks::AppWebhooks;

/// The lister of this CRM, when its API credentials are configured.
pub fn lister(
    settings: &HubSpotSettings,
    metrics: &Metrics,
) -> anyhow::Result<Option<Box<dyn Lister>>> {
    let Some(token) = &settings.api_token else {
        return Ok(None);
    };
    let limits = SearchLimits::hubspot(settings.search_interval);
    let search = ContactSearch::new(settings, token.to_secret_string(), metrics, limits)?;
    Ok(Some(Box::new(search)))
}

/// The webhook subscription API for `target_url` (the full URL of this bridge's webhook), when
/// the credentials it needs are configured.
pub fn subscriptions(
    settings: &HubSpotSettings,
    target_url: &str,
) -> anyhow::Result<Option<Box<dyn Subscriptions>>> {
    let (Some(app_id), Some(key)) = (settings.app_id, &settings.developer_api_key) else {
        return Ok(None);
    };
    let webhooks = AppWebhooks::new(settings, app_id, key.to_secret_string(), target_url)?;
    Ok(Some(Box::new(webhooks)))
}
