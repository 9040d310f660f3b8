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

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FetchError, Window, fetch, http_client};
use crate::metrics::Metrics;

/// The organisation a Pipedrive person belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub org_id: String,
}

/// Seconds until Pipedrive's rate-limit window resets.
pub(super) const WINDOW: Window = ("x-ratelimit-reset", Duration::from_secs);

pub struct PipedriveClient {
    http: reqwest::Client,
    /// `{base}/api/v2/organizations`
    organizations_url: String,
    /// Sent as `x-api-token` (Pipedrive also takes `?api_token=`, which would put the token in
    /// every proxy's access log).
    token: HeaderValue,
    /// Counts reads; set by [`CrmClients::with_metrics`](super::CrmClients::with_metrics).
    pub(super) metrics: Metrics,
}

impl PipedriveClient {
    pub fn new(base_url: &str, token: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let base = base_url.trim().trim_end_matches('/');
        reqwest::Url::parse(base).context("Failed to parse sources.pipedrive.api_base_url")?;
        let mut token = HeaderValue::from_str(token.expose_secret().trim()).map_err(|_| {
            anyhow::anyhow!("sources.pipedrive.api_token is not a valid header value")
        })?;
        token.set_sensitive(true);
        Ok(Self {
            http: http_client(timeout)?,
            organizations_url: format!("{base}/api/v2/organizations"),
            token,
            metrics: Metrics::default(),
        })
    }

    /// `GET /api/v2/organizations/{id}`: the organisation's name; `None` when it no longer
    /// exists or has no name (the guest is then created without a company).
    #[tracing::instrument(name = "pipedrive.fetch_org", skip_all, fields(status))]
    pub async fn org_name(&self, org: &OrgRef) -> Result<Option<String>, FetchError> {
        let url = format!(
            "{}/{}",
            self.organizations_url,
            utf8_percent_encode(&org.org_id, NON_ALPHANUMERIC)
        );
        let request = self.http.get(url).header("x-api-token", self.token.clone());
        match fetch(request, WINDOW, &self.metrics, "pipedrive").await {
            Ok(body) => Ok(name_from(&body)),
            Err(FetchError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl fmt::Debug for PipedriveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipedriveClient")
            .field("organizations_url", &self.organizations_url)
            .field("token", &"[REDACTED]")
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
