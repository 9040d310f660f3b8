//! CRM APIs the delivery worker reads to complete an event before creating its guest: a HubSpot
//! webhook names only the contact, a Pipedrive v2 webhook only the organisation's id.

pub mod hubspot;
pub mod pipedrive;

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::configuration::SourcesSettings;
use crate::tallyfy::{GuestRequest, excerpt, parse_retry_after};
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
            hubspot: match &hubspot.api_token {
                Some(token) => Some(HubSpotClient::new(
                    &hubspot.api_base_url,
                    token.to_secret_string(),
                    hubspot.request_timeout,
                )?),
                None => None,
            },
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
}

/// The outbox payload of an event the worker must complete from its CRM first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Pending {
    /// Everything but the contact's id is to be fetched (its email included).
    HubSpotContact { hubspot_contact: ContactRef },
    /// The guest is known but for its company: the person's organisation is to be fetched.
    PipedriveOrg {
        pipedrive_org: OrgRef,
        guest: Box<GuestRequest>,
    },
}

impl Pending {
    pub fn crm(&self) -> &'static str {
        match self {
            Self::HubSpotContact { .. } => "HubSpot",
            Self::PipedriveOrg { .. } => "Pipedrive",
        }
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

/// A CRM's rate-limit window header and its unit: the wait after a 429 without Retry-After.
type Window = (&'static str, fn(u64) -> Duration);

/// Sends `request` and sorts the answer: the body of a 2xx, or the error class of anything else.
async fn fetch(request: reqwest::RequestBuilder, window: Window) -> Result<Vec<u8>, FetchError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    tracing::Span::current().record("status", status.as_u16());
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport)?.to_vec();
    match status {
        s if s.is_success() => Ok(body),
        StatusCode::NOT_FOUND => Err(FetchError::NotFound),
        StatusCode::TOO_MANY_REQUESTS => Err(FetchError::RateLimited {
            retry_after: rate_limit_wait(&headers, window),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(FetchError::Unauthorized {
            status: status.as_u16(),
        }),
        s if s.as_u16() == 408 || s.is_server_error() => Err(FetchError::Transient {
            status: Some(s.as_u16()),
            detail: excerpt(&body),
        }),
        s => Err(FetchError::Permanent {
            status: s.as_u16(),
            detail: excerpt(&body),
        }),
    }
}

/// Retry-After if the CRM sends one; otherwise its rate-limit window, after which the burst
/// that hit the limit is gone.
fn rate_limit_wait(headers: &HeaderMap, (window, unit): Window) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header(RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .or_else(|| Some(unit(header(window)?.trim().parse().ok()?)))
}

fn transport(error: reqwest::Error) -> FetchError {
    // Keep URLs (ids, and for some CRMs tokens) out of error text.
    let error = error.without_url();
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connect failed"
    } else {
        "request failed"
    };
    FetchError::Transient {
        status: None,
        detail: format!("{kind}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUBSPOT_WINDOW: Window = hubspot::WINDOW;

    #[test]
    fn a_429_waits_for_retry_after_else_the_rolling_window() {
        let mut headers = HeaderMap::new();
        headers.insert(HUBSPOT_WINDOW.0, "10000".parse().expect("value"));
        headers.insert(pipedrive::WINDOW.0, "2".parse().expect("value"));
        assert_eq!(
            rate_limit_wait(&headers, HUBSPOT_WINDOW),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            rate_limit_wait(&headers, pipedrive::WINDOW),
            Some(Duration::from_secs(2))
        );
        headers.insert(RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(
            rate_limit_wait(&headers, HUBSPOT_WINDOW),
            Some(Duration::from_secs(3))
        );
        assert_eq!(rate_limit_wait(&HeaderMap::new(), HUBSPOT_WINDOW), None);
    }

    #[test]
    fn pending_payloads_are_not_guest_requests_and_read_back() {
        let hubspot = Pending::HubSpotContact {
            hubspot_contact: ContactRef {
                portal_id: "62515".into(),
                contact_id: "5012".into(),
            },
        };
        let pipedrive = Pending::PipedriveOrg {
            pipedrive_org: OrgRef {
                org_id: "42".into(),
            },
            guest: Box::new(GuestRequest::new("a@example.com")),
        };
        for pending in [hubspot, pipedrive] {
            let json = serde_json::to_string(&pending).expect("json");
            assert!(
                serde_json::from_str::<GuestRequest>(&json).is_err(),
                "{json}"
            );
            assert_eq!(
                serde_json::from_str::<Pending>(&json).expect("back"),
                pending
            );
        }
        let guest = serde_json::to_string(&GuestRequest::new("a@example.com")).expect("json");
        assert!(serde_json::from_str::<Pending>(&guest).is_err());
    }
}
