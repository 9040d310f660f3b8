//! Salesforce's REST API for reconcile: Contacts by `CreatedDate` with SOQL, signed in with the
//! OAuth client-credentials flow; and the setup steps `connect salesforce` prints.

mod api;
mod auth;
mod contact;
mod instructions;
mod lister;
mod query;
mod retry;

use reqwest::Url;

use crate::configuration::SalesforceSettings;
use crate::crm::listing::Lister;
use crate::metrics::Metrics;
pub use api::ApiUsage;
pub use contact::{ACCOUNT_NAME, EMAIL, FIELDS, check_field_name, contact_draft};
pub use lister::SalesforceLister;
pub use retry::Retry;

/// The lister, when the API credentials are configured.
pub fn lister(
    settings: &SalesforceSettings,
    metrics: &Metrics,
) -> anyhow::Result<Option<Box<dyn Lister>>> {
    Ok(
        SalesforceLister::from_settings(settings, metrics, Retry::default())?
            .map(|lister| Box::new(lister) as Box<dyn Lister>),
    )
}

/// `connect salesforce`: the exact setup steps, with this bridge's values filled in
/// (`target_url` is the full endpoint URL, token included).
pub fn instructions(settings: &SalesforceSettings, target_url: &str) -> String {
    instructions::render(settings, target_url)
}

/// The org's My Domain URL: an origin (no path), https since the client secret is posted to it;
/// plain http only to this machine (a local stand-in). The reason, for the key's error line.
pub fn check_instance_url(url: &str) -> Result<(), &'static str> {
    let problem = "must be the org's https My Domain URL, e.g. https://acme.my.salesforce.com";
    let parsed = Url::parse(url.trim()).map_err(|_| problem)?;
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && local);
    let origin_only = matches!(parsed.path(), "" | "/")
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if !scheme_ok || !origin_only || parsed.host_str().is_none() {
        return Err(problem);
    }
    Ok(())
}

/// `vNN.N`, as the REST API's paths name a version.
pub fn check_api_version(version: &str) -> Result<(), &'static str> {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match version
        .trim()
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
    {
        Some((major, minor)) if digits(major) && digits(minor) => Ok(()),
        _ => Err("must be a REST API version like v62.0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_an_https_origin_or_a_local_stand_in() {
        for good in [
            "https://acme.my.salesforce.com",
            "https://acme.my.salesforce.com/",
            "http://127.0.0.1:8123",
            "http://localhost:9000",
        ] {
            assert!(check_instance_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://acme.my.salesforce.com",
            "https://acme.my.salesforce.com/services/data",
            "https://user:pw@acme.my.salesforce.com",
            "acme.my.salesforce.com",
            "https://acme.my.salesforce.com?x=1",
        ] {
            assert!(check_instance_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_api_version_is_v_major_dot_minor() {
        assert!(check_api_version("v62.0").is_ok());
        for bad in ["62.0", "v62", "v62.x", "latest", ""] {
            assert!(check_api_version(bad).is_err(), "{bad}");
        }
    }
}
