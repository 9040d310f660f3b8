//! `[sources.*]`: the CRM-specific webhook endpoints (`POST /webhooks/{source}`), each on once
//! any of its keys is set and then checked whole. A CRM's own rules (what an org id looks like,
//! what Basic auth can carry) are its adapter's, in `crate::ingest::sources`.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::duration::millis;
use super::error::{ConfigError, above_zero};
use super::secret::{InventedSecret, Secret, non_blank};
use crate::crm::salesforce as salesforce_api;
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
    /// Least time between two requests of a reconcile's contact search: HubSpot's search
    /// endpoints take a few requests per second per account, below the API's general limit.
    #[serde(rename = "search_interval_ms", deserialize_with = "millis")]
    pub search_interval: Duration,
    /// The (public) app whose webhook settings `connect hubspot` manages.
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The developer account's API key, which HubSpot's webhooks API takes (as `hapikey`);
    /// for `connect hubspot` only, never for contact data.
    pub developer_api_key: Option<Secret>,
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
    /// The org's My Domain URL (`https://<domain>.my.salesforce.com`): where the REST API and
    /// its OAuth token endpoint are, for reconcile.
    #[serde(default, deserialize_with = "non_blank")]
    pub instance_url: Option<String>,
    /// The connected app's consumer key (client credentials flow).
    #[serde(default, deserialize_with = "non_blank")]
    pub client_id: Option<String>,
    /// The connected app's consumer secret.
    pub client_secret: Option<Secret>,
    /// The REST API version the queries name, `vNN.N`.
    pub api_version: String,
    #[serde(rename = "request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout: Duration,
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
        above_zero(
            "sources.hubspot.search_interval_ms",
            !self.search_interval.is_zero(),
        )?;
        let webhook_url = self.webhook_url.as_deref();
        let set = [
            self.client_secret.is_some(),
            webhook_url.is_some(),
            self.api_token.is_some(),
        ];
        let connect = [self.app_id.is_some(), self.developer_api_key.is_some()];
        if !set.contains(&true) && !connect.contains(&true) {
            return Ok(());
        }
        // `connect` needs both: the key opens the webhooks API, the id names the app in it.
        if connect[0] != connect[1] {
            let missing = if connect[0] {
                "developer_api_key"
            } else {
                "app_id"
            };
            return Err(ConfigError::key(
                &format!("sources.hubspot.{missing}"),
                "is required with sources.hubspot.app_id and developer_api_key: connect needs both",
            ));
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
        self.validate_api()?;
        if let Some(field) = self.company_field.as_deref() {
            salesforce_api::check_field_name(field)
                .map_err(|problem| ConfigError::key("sources.salesforce.company_field", problem))?;
        }
        let Some(org) = self.organization_id.as_deref() else {
            let api = self.instance_url.is_some();
            if (self.company_field.is_some() && !api) || self.endpoint_token.is_some() {
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

    /// The REST API's three keys come together (reconcile needs each); the URL carries the
    /// client secret to the token endpoint, so it is https (plain http only to this machine).
    fn validate_api(&self) -> Result<(), ConfigError> {
        let set = [
            self.instance_url.is_some(),
            self.client_id.is_some(),
            self.client_secret.is_some(),
        ];
        if !set.contains(&true) {
            return Ok(());
        }
        for (is_set, key) in set
            .iter()
            .zip(["instance_url", "client_id", "client_secret"])
        {
            if !is_set {
                return Err(ConfigError::key(
                    &format!("sources.salesforce.{key}"),
                    "is required once any of sources.salesforce.instance_url, client_id and client_secret is set",
                ));
            }
        }
        salesforce_api::check_instance_url(self.instance_url.as_deref().unwrap_or_default())
            .map_err(|problem| ConfigError::key("sources.salesforce.instance_url", problem))?;
        salesforce_api::check_api_version(&self.api_version)
            .map_err(|problem| ConfigError::key("sources.salesforce.api_version", problem))?;
        above_zero(
            "sources.salesforce.request_timeout_ms",
            !self.request_timeout.is_zero(),
        )
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
