//! `[sources.*]`: the CRM-specific webhook endpoints (`POST /webhooks/{source}`), each on once
//! any of its keys is set and then checked whole. A CRM's own rules (what an org id looks like,
//! what Basic auth can carry) are its adapter's, in `crate::ingest::sources`.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::duration::millis;
use super::error::{ConfigError, above_zero};
use super::secret::{InventedSecret, Secret, non_blank};
use crate::ingest::sources::{pipedrive, salesforce};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesSettings {
    pub pipedrive: PipedriveSettings,
    pub hubspot: HubSpotSettings,
    pub salesforce: SalesforceSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveSettings {
    /// The webhook's "HTTP Auth username and password", as entered in Pipedrive.
    #[serde(default, deserialize_with = "non_blank")]
    pub username: Option<String>,
    pub password: Option<InventedSecret>,
    /// Optional API token: v2 webhooks carry the organisation's id only, and with a token the
    /// worker reads its name for the guest's company.
    pub api_token: Option<Secret>,
    pub api_base_url: String,
    #[serde(rename = "request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout: Duration,
    /// Seconds between scheduled reconciles of this CRM (0: none; `reconcile` still runs by
    /// hand). Needs the CRM's API credentials.
    pub reconcile_every_secs: u64,
    /// Seconds each reconcile reads back before its watermark, for clock skew and late indexing.
    pub reconcile_overlap_secs: u64,
    /// CRM owner id → Tallyfy member id: a guest whose CRM owner is listed is associated with
    /// that member.
    #[serde(default)]
    pub owner_members: OwnerMembers,
    /// This bridge's webhook URL as Pipedrive calls it (`https://…/webhooks/pipedrive`): the
    /// scheduled check looks for a webhook to it. Unset: no scheduled check.
    #[serde(default, deserialize_with = "non_blank")]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotSettings {
    /// The app's client secret: the key of the v3 webhook signature.
    pub client_secret: Option<Secret>,
    /// The target URL exactly as entered in HubSpot: the signature covers it.
    #[serde(default, deserialize_with = "non_blank")]
    pub webhook_url: Option<String>,
    /// Private-app access token with `crm.objects.contacts.read`, to fetch created contacts.
    pub api_token: Option<Secret>,
    pub api_base_url: String,
    #[serde(rename = "request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout: Duration,
    /// Seconds between scheduled reconciles of this CRM (0: none; `reconcile` still runs by
    /// hand). Needs the CRM's API credentials.
    pub reconcile_every_secs: u64,
    /// Seconds each reconcile reads back before its watermark, for clock skew and late indexing.
    pub reconcile_overlap_secs: u64,
    /// CRM owner id → Tallyfy member id: a guest whose CRM owner is listed is associated with
    /// that member.
    #[serde(default)]
    pub owner_members: OwnerMembers,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    /// The org's id (15 or 18 characters); messages from any other org are refused.
    #[serde(default, deserialize_with = "non_blank")]
    pub organization_id: Option<String>,
    /// The last segment of the endpoint URL entered in Salesforce
    /// (`/webhooks/salesforce/{endpoint_token}`): Salesforce cannot sign its messages, and the
    /// org id is no secret.
    pub endpoint_token: Option<Secret<ENDPOINT_TOKEN_MIN_CHARS>>,
    /// A Contact field carrying the account name (e.g. a formula `Account_Name__c`), since an
    /// outbound message holds one object's fields only.
    #[serde(default, deserialize_with = "non_blank")]
    pub company_field: Option<String>,
    /// Largest outbound message accepted: 100 notifications can be far above `http.max_body_bytes`.
    pub max_body_bytes: usize,
    /// Seconds between scheduled reconciles of this CRM (0: none; `reconcile` still runs by
    /// hand). Needs the CRM's API credentials.
    pub reconcile_every_secs: u64,
    /// Seconds each reconcile reads back before its watermark, for clock skew and late indexing.
    pub reconcile_overlap_secs: u64,
    /// CRM owner id → Tallyfy member id: a guest whose CRM owner is listed is associated with
    /// that member.
    #[serde(default)]
    pub owner_members: OwnerMembers,
}

/// CRM owner ids and the Tallyfy member each stands for (`[sources.<crm>.owner_members]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct OwnerMembers(std::collections::BTreeMap<String, u64>);

impl OwnerMembers {
    /// The guest's `associated_members` for a contact owned by `owner`: `None` when it has no
    /// owner or one not in the map.
    pub fn members(&self, owner: Option<&str>) -> Option<Vec<u64>> {
        self.0.get(owner?.trim()).map(|member| vec![*member])
    }
}

#[cfg(test)]
impl<const N: usize> From<[(&str, u64); N]> for OwnerMembers {
    fn from(pairs: [(&str, u64); N]) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
}

/// Shortest `sources.salesforce.endpoint_token`: 32 characters, 128 bits or more as hex.
pub const ENDPOINT_TOKEN_MIN_CHARS: usize = 32;

impl SourcesSettings {
    /// A source is on once any of its keys is set; then all it needs must be set and usable.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.pipedrive.validate()?;
        self.hubspot.validate()?;
        self.salesforce.validate()
    }

    /// The CRM APIs the worker will read, by source name, with the time one read may take: each
    /// must end inside the lease of the attempt that makes it (checked in `Settings::validate`).
    pub(super) fn api_timeouts(&self) -> Vec<(&'static str, Duration)> {
        let mut apis = Vec::new();
        if self.pipedrive.api_token.is_some() {
            apis.push((pipedrive::SOURCE, self.pipedrive.request_timeout));
        }
        if self.hubspot.api_token.is_some() {
            apis.push((
                crate::ingest::sources::hubspot::SOURCE,
                self.hubspot.request_timeout,
            ));
        }
        apis
    }
}

impl PipedriveSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let username = self.username.as_deref();
        if username.is_some() != self.password.is_some() {
            let missing = if username.is_some() {
                "password"
            } else {
                "username"
            };
            return Err(ConfigError::key(
                &format!("sources.pipedrive.{missing}"),
                "is required: Pipedrive sends both as HTTP Basic auth",
            ));
        }
        if let Some(username) = username {
            pipedrive::check_username(username)
                .map_err(|problem| ConfigError::key("sources.pipedrive.username", problem))?;
        }
        if self.api_token.is_some() {
            if username.is_none() {
                return Err(ConfigError::key(
                    "sources.pipedrive.username",
                    "and password are required once sources.pipedrive.api_token is set",
                ));
            }
            check_api_base_url("sources.pipedrive.api_base_url", &self.api_base_url)?;
        }
        if let Some(url) = self.webhook_url.as_deref() {
            if self.api_token.is_none() {
                return Err(ConfigError::key(
                    "sources.pipedrive.webhook_url",
                    "needs sources.pipedrive.api_token: the check reads the webhooks from Pipedrive's API",
                ));
            }
            if !is_http_url(url) || reqwest::Url::parse(url).is_err() {
                return Err(ConfigError::key(
                    "sources.pipedrive.webhook_url",
                    "must be an http(s) URL, such as https://bridge.example.com/webhooks/pipedrive",
                ));
            }
        }
        Ok(())
    }
}

impl HubSpotSettings {
    /// All three keys or none: the signature needs the secret and the URL, and the webhook
    /// carries only an id, so the worker needs the token.
    fn validate(&self) -> Result<(), ConfigError> {
        let webhook_url = self.webhook_url.as_deref();
        let set = [
            self.client_secret.is_some(),
            webhook_url.is_some(),
            self.api_token.is_some(),
        ];
        if !set.contains(&true) {
            return Ok(());
        }
        for (is_set, key) in set
            .iter()
            .zip(["client_secret", "webhook_url", "api_token"])
        {
            if !is_set {
                return Err(ConfigError::key(
                    &format!("sources.hubspot.{key}"),
                    "is required once any sources.hubspot key is set",
                ));
            }
        }
        if !is_http_url(webhook_url.unwrap_or_default()) {
            return Err(ConfigError::key(
                "sources.hubspot.webhook_url",
                "must be an http(s) URL",
            ));
        }
        check_api_base_url("sources.hubspot.api_base_url", &self.api_base_url)
    }
}

impl SalesforceSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let Some(org) = self.organization_id.as_deref() else {
            if self.company_field.is_some() || self.endpoint_token.is_some() {
                return Err(ConfigError::key(
                    "sources.salesforce.organization_id",
                    "is required once any sources.salesforce key is set",
                ));
            }
            return Ok(());
        };
        salesforce::check_organization_id(org)
            .map_err(|problem| ConfigError::key("sources.salesforce.organization_id", problem))?;
        const TOKEN: &str = "sources.salesforce.endpoint_token";
        let Some(token) = &self.endpoint_token else {
            return Err(ConfigError::key(
                TOKEN,
                "is required once sources.salesforce.organization_id is set: generate one with `openssl rand -hex 32`; Salesforce's endpoint URL is then https://<host>/webhooks/salesforce/<token>",
            ));
        };
        // The message names the rule, never the token.
        salesforce::check_endpoint_token(token.expose_secret())
            .map_err(|problem| ConfigError::key(TOKEN, problem))?;
        above_zero("sources.salesforce.max_body_bytes", self.max_body_bytes > 0)
    }
}

fn check_api_base_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if is_http_url(url) {
        Ok(())
    } else {
        Err(ConfigError::key(key, "must be an http(s) URL"))
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}
