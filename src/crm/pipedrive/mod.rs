//! Pipedrive's API: a v2 `create.person` webhook carries the organisation's id but not its
//! name, so the worker reads the name here for the guest's company; reconcile lists persons and
//! connect manages the webhook ([`reconcile`]).

mod api;
pub mod pacing;
pub mod person;
mod persons;
pub mod reconcile;
pub mod values;
mod webhooks;

use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FetchError, Window, fetch};
use crate::metrics::Metrics;
use api::Api;

/// The organisation a Pipedrive person belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub org_id: String,
}

/// Seconds until Pipedrive's rate-limit window resets.
pub(super) const WINDOW: Window = ("x-ratelimit-reset", Duration::from_secs);

pub struct PipedriveClient {
    /// The API root and the `x-api-token` header.
    api: Api,
    /// Counts reads; set by [`CrmClients::with_metrics`](super::CrmClients::with_metrics).
    pub(super) metrics: Metrics,
}

impl PipedriveClient {
    pub fn new(base_url: &str, token: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            api: Api::new(base_url, token, timeout)?,
            metrics: Metrics::default(),
        })
    }

    /// `GET /api/v2/organizations/{id}`: the organisation's name; `None` when it no longer
    /// exists or has no name (the guest is then created without a company).
    #[tracing::instrument(name = "pipedrive.fetch_org", skip_all, fields(status))]
    pub async fn org_name(&self, org: &OrgRef) -> Result<Option<String>, FetchError> {
        let url = self.api.url(&format!(
            "/api/v2/organizations/{}",
            utf8_percent_encode(&org.org_id, NON_ALPHANUMERIC)
        ));
        let request = self.api.request(Method::GET, &url);
        match fetch(request, WINDOW, &self.metrics, "pipedrive").await {
            Ok(body) => Ok(name_from(&body)),
            Err(FetchError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl std::fmt::Debug for PipedriveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveClient")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// `data.name` of `{"success": true, "data": {"id": 42, "name": "…"}}`.
fn name_from(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let name = value.get("data")?.get("name")?.as_str()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_read_from_data_and_blank_names_are_none() {
        assert_eq!(
            name_from(br#"{"success":true,"data":{"id":42,"name":" Navy Labs "}}"#).as_deref(),
            Some("Navy Labs")
        );
        assert_eq!(
            name_from(br#"{"success":true,"data":{"id":42,"name":""}}"#),
            None
        );
        assert_eq!(name_from(br#"{"success":false}"#), None);
    }

    #[test]
    fn the_token_never_prints() {
        let client = PipedriveClient::new(
            "https://api.pipedrive.com",
            &SecretString::from("pd-token-value"),
            Duration::from_secs(1),
        )
        .expect("client");
        assert!(!format!("{client:?}").contains("pd-token-value"));
    }
}
