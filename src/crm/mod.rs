//! CRM APIs: what the delivery worker reads to complete an event before creating its guest (a
//! HubSpot webhook names only the contact, a Pipedrive v2 webhook only the organisation's id),
//! and what a reconcile lists and `connect` subscribes to ([`listing`]).

pub mod hubspot;
pub mod listing;
pub mod pipedrive;
pub mod salesforce;

use std::time::{Duration, Instant};

use crate::configuration::SourcesSettings;
use crate::metrics::Metrics;
use crate::upstream::{self, Failure, Window, excerpt};
pub use hubspot::{ContactRef, HubSpotClient};
pub use pipedrive::{OrgRef, PipedriveClient};

/// The CRM APIs configured for the worker; an event that needs one that is missing waits (HubSpot)
/// or goes without what it would have read (Pipedrive's company).
#[derive(Debug, Default)]
pub struct CrmClients {
    pub hubspot: Option<HubSpotClient>,
    pub pipedrive: Option<PipedriveClient>,
}

impl CrmClients {
    pub fn from_settings(sources: &SourcesSettings) -> anyhow::Result<Self> {
        let (hubspot, pipedrive) = (&sources.hubspot, &sources.pipedrive);
        Ok(Self {
            hubspot: HubSpotClient::from_settings(hubspot)?,
            pipedrive: match &pipedrive.api_token {
                Some(token) => Some(PipedriveClient::new(
                    &pipedrive.api_base_url,
                    &token.to_secret_string(),
                    pipedrive.request_timeout,
                )?),
                None => None,
            },
        })
    }

    /// The same clients, counting their reads in `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        if let Some(client) = &mut self.hubspot {
            client.metrics = metrics.clone();
        }
        if let Some(client) = &mut self.pipedrive {
            client.metrics = metrics.clone();
        }
        self
    }
}

/// Why a CRM read gave nothing to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("no such record (HTTP 404): deleted or merged before it was fetched")]
    NotFound,
    #[error("rate limited")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the API token was refused (HTTP {status})")]
    Unauthorized { status: u16 },
    /// An event is waiting but this deployment has no API token for its CRM (any more).
    #[error("no API token is configured to fetch it")]
    NotConfigured,
    #[error("fetch failed{}: {detail}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient { status: Option<u16>, detail: String },
    #[error("fetch refused (HTTP {status}): {detail}")]
    Permanent { status: u16, detail: String },
}

impl FetchError {
    /// A CRM's reading of a failed read: a 404 is a record deleted or merged, a 422 a refusal
    /// like any other 4xx. `body` is the response's (empty without one).
    fn from_failure(failure: Failure, body: &[u8]) -> Self {
        match failure {
            Failure::NotFound => Self::NotFound,
            Failure::RateLimited { retry_after } => Self::RateLimited { retry_after },
            Failure::Unauthorized { status } => Self::Unauthorized { status },
            Failure::Transient { status, detail, .. } => Self::Transient { status, detail },
            Failure::Unprocessable => Self::Permanent {
                status: 422,
                detail: excerpt(body),
            },
            Failure::Permanent { status, excerpt } => Self::Permanent {
                status,
                detail: excerpt,
            },
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::NotFound => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::Unauthorized { status } | Self::Permanent { status, .. } => Some(*status),
            Self::Transient { status, .. } => *status,
            Self::NotConfigured => None,
        }
    }
}

/// A plain HTTP client for a CRM's read API: bounded, no redirects, our user agent.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tallyfy-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("Failed to build a CRM HTTP client")
}

/// A CRM API's whole answer, read but not yet sorted.
struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// Sends `request` and reads the whole answer; the call is counted in `metrics` under `crm`.
async fn send(
    request: reqwest::RequestBuilder,
    metrics: &Metrics,
    crm: &'static str,
) -> Result<Answer, FetchError> {
    let started = Instant::now();
    let sent = request.send().await;
    let status = sent.as_ref().ok().map(|r| r.status().as_u16());
    metrics.crm_read(crm, status, started.elapsed());
    let response = sent.map_err(transport)?;
    let status = response.status();
    tracing::Span::current().record("status", status.as_u16());
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport)?.to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Answer {
    /// The body of a 2xx, or the error class of anything else (`window` names the CRM's
    /// rate-limit reset header).
    fn sorted(self, window: Window) -> Result<Vec<u8>, FetchError> {
        match upstream::classify(self.status, &self.headers, &self.body, Some(window)) {
            Ok(()) => Ok(self.body),
            Err(failure) => Err(FetchError::from_failure(failure, &self.body)),
        }
    }
}

/// Sends `request` and sorts the answer: the body of a 2xx, or the error class of anything else.
/// The read is counted in `metrics` under `crm`.
async fn fetch(
    request: reqwest::RequestBuilder,
    window: Window,
    metrics: &Metrics,
    crm: &'static str,
) -> Result<Vec<u8>, FetchError> {
    send(request, metrics, crm).await?.sorted(window)
}

fn transport(error: reqwest::Error) -> FetchError {
    FetchError::from_failure(upstream::transport(error), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_is_a_missing_record_and_a_422_a_refusal() {
        assert_eq!(
            FetchError::from_failure(Failure::NotFound, b""),
            FetchError::NotFound
        );
        assert_eq!(
            FetchError::from_failure(Failure::Unprocessable, b"bad"),
            FetchError::Permanent {
                status: 422,
                detail: "bad".into()
            }
        );
    }
}
