//! Salesforce's REST API for reconcile: contacts by `CreatedDate` with SOQL, authenticated with
//! the OAuth client-credentials flow. (Stub: filled in by the Salesforce reconcile work.)

use crate::configuration::SalesforceSettings;
use crate::crm::listing::Lister;
use crate::metrics::Metrics;

/// The lister, when the API credentials are configured.
pub fn lister(
    _settings: &SalesforceSettings,
    _metrics: &Metrics,
) -> anyhow::Result<Option<Box<dyn Lister>>> {
    Ok(None)
}

/// `connect salesforce`: the exact setup steps, with this bridge's values filled in
/// (`target_url` is the full endpoint URL, token included).
pub fn instructions(_settings: &SalesforceSettings, target_url: &str) -> String {
    format!("Create an outbound message pointing at {target_url}")
}
