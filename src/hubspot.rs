//! HubSpot's side of a contact creation: its webhook names only the contact, so the outbox keeps
//! a [`Pending`] reference and the worker fetches the contact's fields from the CRM API here.

use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tallyfy::fields::ContactDraft;
use crate::tallyfy::parse_retry_after;

/// One HubSpot contact: the account (portal) and the contact's id in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRef {
    pub portal_id: String,
    pub contact_id: String,
}

impl ContactRef {
    /// The row's identity until the email is known: one fetch per contact at a time, and never
    /// equal to an email (no `@`).
    pub fn key(&self) -> String {
        format!("hubspot:{}:{}", self.portal_id, self.contact_id)
    }
}

/// The outbox payload of an event whose contact is still to be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub hubspot_contact: ContactRef,
}

/// Why a fetch gave no contact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("HubSpot has no such contact (HTTP 404): deleted or merged before it was fetched")]
    NotFound,
    #[error("rate limited by HubSpot")]
    RateLimited { retry_after: Option<Duration> },
    #[error("HubSpot refused the private-app token (HTTP {status})")]
    Unauthorized { status: u16 },
    /// A HubSpot event is waiting but this deployment has no HubSpot token (any more).
    #[error("HubSpot contact fetch is not configured (sources.hubspot.api_token)")]
    NotConfigured,
    #[error("HubSpot fetch failed{}: {detail}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient { status: Option<u16>, detail: String },
    #[error("HubSpot refused the fetch (HTTP {status}): {detail}")]
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

/// The CRM properties a guest is made from (commas are fine unescaped in a query).
const PROPERTIES: &str = "email,firstname,lastname,phone,company";

pub struct HubSpotClient {
    http: reqwest::Client,
    /// `{base}/crm/v3/objects/contacts`
    contacts_url: String,
    token: SecretString,
}

impl HubSpotClient {
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let base = base_url.trim().trim_end_matches('/');
        reqwest::Url::parse(base).context("Failed to parse sources.hubspot.api_base_url")?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tallyfy-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("Failed to build the HubSpot HTTP client")?;
        Ok(Self {
            http,
            contacts_url: format!("{base}/crm/v3/objects/contacts"),
            token,
        })
    }

    /// `GET /crm/v3/objects/contacts/{id}?properties=…`: the contact's email, names, phone and
    /// company (the contact's own text property).
    #[tracing::instrument(name = "hubspot.fetch_contact", skip_all, fields(status))]
    pub async fn fetch_contact(&self, contact_id: &str) -> Result<ContactDraft, FetchError> {
        let url = format!(
            "{}/{}?properties={PROPERTIES}",
            self.contacts_url,
            utf8_percent_encode(contact_id, NON_ALPHANUMERIC)
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        match status {
            s if s.is_success() => contact_from(&body).ok_or_else(|| FetchError::Transient {
                status: Some(s.as_u16()),
                detail: "the answer has no contact properties".into(),
            }),
            StatusCode::NOT_FOUND => Err(FetchError::NotFound),
            StatusCode::TOO_MANY_REQUESTS => Err(FetchError::RateLimited {
                retry_after: rate_limit_wait(&headers),
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
}

impl fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("contacts_url", &self.contacts_url)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Retry-After if HubSpot sends one; otherwise the length of its rolling window, which is how
/// long until the burst that hit the limit has aged out.
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header(RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .or_else(|| {
            header("x-hubspot-ratelimit-interval-milliseconds")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_millis)
        })
}

fn contact_from(body: &[u8]) -> Option<ContactDraft> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let properties = value.get("properties")?.as_object()?;
    let property = |name: &str| {
        properties
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(ContactDraft {
        email: property("email"),
        first_name: property("firstname"),
        last_name: property("lastname"),
        phone: property("phone"),
        company: property("company"),
    })
}

fn transport(error: reqwest::Error) -> FetchError {
    // The URL carries only the contact id, but keep error text free of URLs anyway.
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

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_properties_become_a_draft_and_nulls_stay_unset() {
        let draft = contact_from(
            br#"{"id":"5012","properties":{"email":"a@example.com","firstname":"Ada",
                 "lastname":null,"phone":"+1 555","company":"AE","hs_object_id":"5012"}}"#,
        )
        .expect("a contact");
        assert_eq!(
            draft,
            ContactDraft {
                email: Some("a@example.com".into()),
                first_name: Some("Ada".into()),
                last_name: None,
                phone: Some("+1 555".into()),
                company: Some("AE".into()),
            }
        );
        assert_eq!(contact_from(b"<html>"), None);
    }

    #[test]
    fn a_429_waits_for_retry_after_else_the_rolling_window() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            "10000".parse().expect("value"),
        );
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(10)));
        headers.insert(RETRY_AFTER, "3".parse().expect("value"));
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(3)));
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn the_pending_payload_is_not_a_guest_request_and_back() {
        let pending = Pending {
            hubspot_contact: ContactRef {
                portal_id: "62515".into(),
                contact_id: "5012".into(),
            },
        };
        let json = serde_json::to_string(&pending).expect("json");
        assert!(serde_json::from_str::<crate::tallyfy::GuestRequest>(&json).is_err());
        assert_eq!(
            serde_json::from_str::<Pending>(&json).expect("back"),
            pending
        );
        assert_eq!(pending.hubspot_contact.key(), "hubspot:62515:5012");
    }
}
