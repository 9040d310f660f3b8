//! Reconcile and connect for Hubspot: the contacts its API lists and its webhook subscription.
//! (Stub: filled in by the Hubspot reconcile work.)

use crate::configuration::HubSpotSettings;
use crate::crm::listing::{Lister, Subscriptions};
use crate::metrics::Metrics;

/// The lister of this CRM, when its API credentials are configured.
pub fn lister(
    _settings: &HubSpotSettings,
    _metrics: &Metrics,
) -> anyhow::Result<Option<Box<dyn Lister>>> {
    Ok(None)
}

/// The webhook subscription API for `target_url` (the full URL of this bridge's webhook), when
/// the credentials it needs are configured.
pub fn subscriptions(
    _settings: &HubSpotSettings,
    _target_url: &str,
) -> anyhow::Result<Option<Box<dyn Subscriptions>>> {
    Ok(None)
}
