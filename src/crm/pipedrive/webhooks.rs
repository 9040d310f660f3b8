//! `connect pipedrive`: the bridge's webhook in Pipedrive (`/v1/webhooks`), a v2 webhook of every
//! person event (`*.person`: creations, and the updates that bring a refused person's email
//! later) to this bridge's URL with its Basic credentials. Pipedrive has no update of a webhook,
//! so one that is inactive, carries other credentials or sends creations only is deleted and
//! made anew.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Api;
use super::pacing::Pacing;
use super::values::id_of;
use crate::crm::FetchError;
use crate::crm::listing::{Connected, ListStats, Subscription, SubscriptionState, Subscriptions};

/// What the bridge subscribes to: every action on persons. v2 names a creation `create` (v1:
/// `added`); a webhook of creations alone is still the bridge's, without email later.
const ACTION: &str = "*";
const OBJECT: &str = "person";
const VERSION: &str = "2.0";

/// The bridge's webhook subscription in one Pipedrive company.
#[derive(Debug)]
pub struct PipedriveWebhooks {
    api: Api,
    pacing: Pacing,
    /// The full URL Pipedrive calls, `…/webhooks/pipedrive`.
    target_url: String,
    /// `sources.pipedrive.username` / `password`: the webhook's HTTP Basic auth.
    user: String,
    password: SecretString,
}

/// A webhook as `GET /v1/webhooks` lists it.
#[derive(Debug, Clone, Deserialize)]
struct Webhook {
    id: Value,
    #[serde(default)]
    event_action: String,
    #[serde(default)]
    event_object: String,
    #[serde(default)]
    subscription_url: String,
    /// 1 or 0 (a boolean in some answers).
    #[serde(default)]
    is_active: Value,
    #[serde(default)]
    http_auth_user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    #[serde(default)]
    data: Option<Vec<Webhook>>,
}

#[derive(Debug, Deserialize)]
struct Created {
    data: Webhook,
}

impl Webhook {
    fn id(&self) -> String {
        id_of(Some(&self.id)).unwrap_or_default()
    }

    /// Whether it sends person creations (v2 `create`, v1 `added`, or a wildcard).
    fn delivers_creations(&self) -> bool {
        matches!(self.event_object.as_str(), OBJECT | "*")
            && matches!(self.event_action.as_str(), "create" | "added" | "*")
    }

    /// Whether it sends person updates too.
    fn delivers_updates(&self) -> bool {
        self.event_action == ACTION && self.event_object == OBJECT
    }

    fn active(&self) -> bool {
        match &self.is_active {
            Value::Bool(active) => *active,
            Value::Number(n) => n.as_u64() == Some(1),
            Value::String(s) => s == "1" || s == "true",
            _ => false,
        }
    }
}

/// Same URL, ignoring a trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

impl PipedriveWebhooks {
    pub(super) fn new(
        api: Api,
        pacing: Pacing,
        target_url: &str,
        user: &str,
        password: SecretString,
    ) -> Self {
        Self {
            api,
            pacing,
            target_url: target_url.trim().to_owned(),
            user: user.to_owned(),
            password,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, FetchError> {
        let url = self.api.url(path);
        let mut stats = ListStats::default();
        self.pacing
            .call(&mut stats, || {
                let mut request = self.api.request(method.clone(), &url);
                if let Some(body) = &body {
                    request = request.json(body);
                }
                self.api.send(request)
            })
            .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, FetchError> {
        let body = self.call(Method::GET, "/v1/webhooks", None).await?;
        let listed: Listed =
            serde_json::from_slice(&body).map_err(|error| unreadable("webhooks list", error))?;
        Ok(listed.data.unwrap_or_default())
    }

    /// The creation webhooks at this bridge's URL.
    fn ours<'w>(&self, webhooks: &'w [Webhook]) -> Vec<&'w Webhook> {
        webhooks
            .iter()
            .filter(|w| w.delivers_creations() && same_url(&w.subscription_url, &self.target_url))
            .collect()
    }

    fn matches(&self, webhook: &Webhook) -> bool {
        webhook.active() && webhook.http_auth_user.as_deref() == Some(self.user.as_str())
    }

    fn verdict(&self, webhooks: &[Webhook]) -> Subscription {
        let ours = self.ours(webhooks);
        let found = |state, detail: String| Subscription { state, detail };
        if let Some(hook) = ours
            .iter()
            .find(|w| self.matches(w) && w.delivers_updates())
        {
            return found(
                SubscriptionState::Ok,
                format!(
                    "webhook {} sends person creations and updates to {}",
                    hook.id(),
                    self.target_url
                ),
            );
        }
        if let Some(hook) = ours.iter().find(|w| self.matches(w)) {
            return found(
                SubscriptionState::Ok,
                format!(
                    "webhook {} sends person creations to {}, not updates: run connect again for email later",
                    hook.id(),
                    self.target_url
                ),
            );
        }
        if let Some(hook) = ours.iter().find(|w| !w.active()) {
            return found(
                SubscriptionState::Inactive,
                format!("webhook {} to {} is inactive", hook.id(), self.target_url),
            );
        }
        if let Some(hook) = ours.first() {
            return found(
                SubscriptionState::WrongUrl,
                format!(
                    "webhook {} to {} has another HTTP auth user than sources.pipedrive.username",
                    hook.id(),
                    self.target_url
                ),
            );
        }
        // A bridge's webhook at another address (the public URL changed); another service's
        // creation webhook is none of the bridge's business.
        if let Some(hook) = webhooks.iter().find(|w| {
            w.delivers_creations()
                && w.subscription_url
                    .trim_end_matches('/')
                    .ends_with("/webhooks/pipedrive")
        }) {
            return found(
                SubscriptionState::WrongUrl,
                format!(
                    "webhook {} sends person creations to {}, not {}",
                    hook.id(),
                    hook.subscription_url,
                    self.target_url
                ),
            );
        }
        found(
            SubscriptionState::Missing,
            format!(
                "no webhook sends person creations to {} (Pipedrive deletes one that failed for 3 days)",
                self.target_url
            ),
        )
    }

    async fn create(&self) -> Result<Webhook, FetchError> {
        let body = json!({
            "subscription_url": self.target_url,
            "event_action": ACTION,
            "event_object": OBJECT,
            "version": VERSION,
            "http_auth_user": self.user,
            "http_auth_password": self.password.expose_secret(),
        });
        let answer = self.call(Method::POST, "/v1/webhooks", Some(body)).await?;
        let created: Created = serde_json::from_slice(&answer)
            .map_err(|error| unreadable("created webhook", error))?;
        Ok(created.data)
    }

    async fn delete(&self, webhook: &Webhook) -> Result<(), FetchError> {
        let path = format!("/v1/webhooks/{}", webhook.id());
        match self.call(Method::DELETE, &path, None).await {
            // Gone already (Pipedrive removed it meanwhile): what we wanted.
            Ok(_) | Err(FetchError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

fn unreadable(what: &str, error: serde_json::Error) -> FetchError {
    FetchError::Transient {
        status: None,
        detail: format!("a {what} that is not Pipedrive's shape: {error}"),
    }
}

#[async_trait::async_trait]
impl Subscriptions for PipedriveWebhooks {
    #[tracing::instrument(name = "pipedrive.check_webhook", skip_all)]
    async fn check(&self) -> Result<Subscription, FetchError> {
        Ok(self.verdict(&self.webhooks().await?))
    }

    #[tracing::instrument(name = "pipedrive.connect_webhook", skip_all)]
    async fn connect(&self) -> Result<(Connected, Subscription), FetchError> {
        let webhooks = self.webhooks().await?;
        let found = self.verdict(&webhooks);
        let complete = self
            .ours(&webhooks)
            .iter()
            .any(|w| self.matches(w) && w.delivers_updates());
        if complete {
            return Ok((Connected::Reused, found));
        }
        let stale: Vec<&Webhook> = self.ours(&webhooks);
        for webhook in &stale {
            self.delete(webhook).await?;
        }
        let created = self.create().await?;
        let done = if stale.is_empty() {
            Connected::Created
        } else {
            Connected::Updated
        };
        tracing::info!(webhook = %created.id(), ?done, "Pipedrive webhook connected");
        Ok((done, self.verdict(&[created])))
    }
}
