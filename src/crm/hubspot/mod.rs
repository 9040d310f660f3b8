//! HubSpot's CRM API: a `contact.creation` webhook carries only the contact's id, so the worker
//! fetches its email, names, phone, company and owner here; a reconcile searches contacts by
//! creation time ([`search`]) and `connect` manages the app's webhooks ([`webhooks`]).

mod contact;
pub mod pacing;
pub mod reconcile;
pub mod search;
pub mod webhooks;

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FetchError, Window, fetch, http_client};
use crate::configuration::{HubSpotSettings, OwnerMembers};
use crate::metrics::Metrics;
pub use contact::HubSpotContact;

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

/// HubSpot's rolling rate-limit window, in milliseconds.
pub(super) const WINDOW: Window = (
    "x-hubspot-ratelimit-interval-milliseconds",
    Duration::from_millis,
);

pub struct HubSpotClient {
    http: reqwest::Client,
    /// `{base}/crm/v3/objects/contacts`
    contacts_url: String,
    token: SecretString,
    /// Whose guests are associated with which Tallyfy member.
    owners: OwnerMembers,
    /// Counts reads; set by [`CrmClients::with_metrics`](super::CrmClients::with_metrics).
    pub(super) metrics: Metrics,
}

impl HubSpotClient {
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(timeout)?,
            contacts_url: format!("{}/crm/v3/objects/contacts", api_base(base_url)?),
            token,
            owners: OwnerMembers::default(),
            metrics: Metrics::default(),
        })
    }

    /// The worker's client, when an API token is configured.
    pub fn from_settings(settings: &HubSpotSettings) -> anyhow::Result<Option<Self>> {
        let Some(token) = &settings.api_token else {
            return Ok(None);
        };
        let client = Self::new(
            &settings.api_base_url,
            token.to_secret_string(),
            settings.request_timeout,
        )?;
        Ok(Some(Self {
            owners: settings.owner_members.clone(),
            ..client
        }))
    }

    /// `GET /crm/v3/objects/contacts/{id}?properties=…`: the contact's email, names, phone,
    /// company (the contact's own text property) and owner.
    #[tracing::instrument(name = "hubspot.fetch_contact", skip_all, fields(status))]
    pub async fn fetch_contact(&self, contact_id: &str) -> Result<HubSpotContact, FetchError> {
        // Commas are fine unescaped in a query.
        let url = format!(
            "{}/{}?properties={}",
            self.contacts_url,
            utf8_percent_encode(contact_id, NON_ALPHANUMERIC),
            contact::PROPERTIES.join(",")
        );
        let request = self.http.get(url).bearer_auth(self.token.expose_secret());
        let body = fetch(request, WINDOW, &self.metrics, "hubspot").await?;
        contact_from(&body, &self.owners).ok_or_else(|| FetchError::Transient {
            status: None,
            detail: "the answer has no contact properties".into(),
        })
    }
}

/// `api_base_url` without its trailing slash, checked.
fn api_base(base_url: &str) -> anyhow::Result<&str> {
    let base = base_url.trim().trim_end_matches('/');
    reqwest::Url::parse(base).context("Failed to parse sources.hubspot.api_base_url")?;
    Ok(base)
}

impl fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("contacts_url", &self.contacts_url)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

fn contact_from(body: &[u8], owners: &OwnerMembers) -> Option<HubSpotContact> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let properties = value.get("properties")?.as_object()?;
    Some(HubSpotContact::from_properties(properties, owners))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetched_contact_is_read_from_its_properties() {
        let owners = OwnerMembers::default();
        let read = contact_from(
            br#"{"id":"5012","properties":{"email":"a@example.com","firstname":"Ada"}}"#,
            &owners,
        )
        .expect("a contact");
        assert_eq!(read.draft.email.as_deref(), Some("a@example.com"));
        assert_eq!(read.draft.first_name.as_deref(), Some("Ada"));
        assert_eq!(contact_from(b"<html>", &owners), None);
        assert_eq!(contact_from(br#"{"id":"5012"}"#, &owners), None);
    }

    #[test]
    fn the_row_key_of_a_contact_is_never_an_email() {
        let contact = ContactRef {
            portal_id: "62515".into(),
            contact_id: "5012".into(),
        };
        assert_eq!(contact.key(), "hubspot:62515:5012");
    }
}
