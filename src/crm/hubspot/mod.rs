//! HubSpot's CRM API: a `contact.creation` webhook carries only the contact's id, so the worker
//! fetches its email, names, phone and company here.

pub mod reconcile;

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FetchError, Window, fetch, http_client};
use crate::domain::ContactDraft;
use crate::metrics::Metrics;

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

/// The CRM properties a guest is made from (commas are fine unescaped in a query).
const PROPERTIES: &str = "email,firstname,lastname,phone,company";
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
    /// Counts reads; set by [`CrmClients::with_metrics`](super::CrmClients::with_metrics).
    pub(super) metrics: Metrics,
}

impl HubSpotClient {
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let base = base_url.trim().trim_end_matches('/');
        reqwest::Url::parse(base).context("Failed to parse sources.hubspot.api_base_url")?;
        Ok(Self {
            http: http_client(timeout)?,
            contacts_url: format!("{base}/crm/v3/objects/contacts"),
            token,
            metrics: Metrics::default(),
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
        let request = self.http.get(url).bearer_auth(self.token.expose_secret());
        let body = fetch(request, WINDOW, &self.metrics, "hubspot").await?;
        contact_from(&body).ok_or_else(|| FetchError::Transient {
            status: None,
            detail: "the answer has no contact properties".into(),
        })
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
    fn the_row_key_of_a_contact_is_never_an_email() {
        let contact = ContactRef {
            portal_id: "62515".into(),
            contact_id: "5012".into(),
        };
        assert_eq!(contact.key(), "hubspot:62515:5012");
    }
}
