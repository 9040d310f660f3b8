//! `connect hubspot`: the app's webhook target URL and its `contact.creation` and
//! `contact.propertyChange` (`email`) subscriptions, through HubSpot's webhooks API v3, which
//! takes the developer account's API key as `hapikey` (so no URL of it is ever logged).

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{WINDOW, api_base};
use crate::configuration::HubSpotSettings;
use crate::crm::listing::{Connected, Subscription, SubscriptionState, Subscriptions};
use crate::crm::{FetchError, fetch, http_client};
use crate::ingest::sources::hubspot::SOURCE;
use crate::metrics::Metrics;

/// A subscription the bridge needs: its event type and, for a property change, the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    event_type: &'static str,
    property: Option<&'static str>,
}

/// Creations are the guests; an email added later reaches a refused contact ("email later").
const WANTED: [Wanted; 2] = [
    Wanted {
        event_type: "contact.creation",
        property: None,
    },
    Wanted {
        event_type: "contact.propertyChange",
        property: Some("email"),
    },
];

/// What HubSpot throttles its calls to the bridge to when the app has no settings yet.
const MAX_CONCURRENT_REQUESTS: u64 = 10;

/// One app's webhook settings and subscriptions, for the bridge's `target_url`.
pub struct AppWebhooks {
    http: reqwest::Client,
    /// `{base}/webhooks/v3/{appId}`
    app_url: reqwest::Url,
    key: SecretString,
    target_url: String,
    metrics: Metrics,
}

/// `GET /webhooks/v3/{appId}/settings`
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(rename = "targetUrl")]
    target_url: String,
    throttling: Option<Value>,
}

/// One of `GET /webhooks/v3/{appId}/subscriptions`' `results`.
#[derive(Debug, Clone, Deserialize)]
struct Found {
    id: Value,
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(rename = "propertyName")]
    property_name: Option<String>,
    active: bool,
}

#[derive(Deserialize)]
struct FoundList {
    results: Vec<Found>,
}

impl Wanted {
    fn matches(&self, found: &Found) -> bool {
        found.event_type == self.event_type && found.property_name.as_deref() == self.property
    }

    fn name(&self) -> String {
        match self.property {
            Some(property) => format!("{} ({property})", self.event_type),
            None => self.event_type.to_owned(),
        }
    }
}

impl AppWebhooks {
    pub fn new(
        settings: &HubSpotSettings,
        app_id: u64,
        key: SecretString,
        target_url: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(settings.request_timeout)?,
            app_url: reqwest::Url::parse(&format!(
                "{}/webhooks/v3/{app_id}",
                api_base(&settings.api_base_url)?
            ))
            .context("Failed to parse sources.hubspot.api_base_url")?,
            key,
            target_url: target_url.to_owned(),
            metrics: Metrics::default(),
        })
    }

    /// `method` on `{app_url}{path}?hapikey=…`.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut url = self.app_url.clone();
        url.set_path(&format!("{}{path}", self.app_url.path()));
        url.query_pairs_mut()
            .append_pair("hapikey", self.key.expose_secret());
        self.http.request(method, url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, FetchError> {
        fetch(request, WINDOW, &self.metrics, SOURCE).await
    }

    /// The app's settings; `None` while it has none (404).
    async fn settings(&self) -> Result<Option<Settings>, FetchError> {
        match self
            .send(self.request(reqwest::Method::GET, "/settings"))
            .await
        {
            Ok(body) => parse(&body).map(Some),
            Err(FetchError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn subscriptions(&self) -> Result<Vec<Found>, FetchError> {
        let body = self
            .send(self.request(reqwest::Method::GET, "/subscriptions"))
            .await?;
        parse::<FoundList>(&body).map(|list| list.results)
    }

    async fn state(&self) -> Result<Subscription, FetchError> {
        let settings = self.settings().await?;
        let found = self.subscriptions().await?;
        Ok(state_of(settings.as_ref(), &found, &self.target_url))
    }
}

#[async_trait::async_trait]
impl Subscriptions for AppWebhooks {
    #[tracing::instrument(name = "hubspot.webhooks.check", skip_all)]
    async fn check(&self) -> Result<Subscription, FetchError> {
        self.state().await
    }

    #[tracing::instrument(name = "hubspot.webhooks.connect", skip_all)]
    async fn connect(&self) -> Result<(Connected, Subscription), FetchError> {
        let (mut created, mut updated) = (false, false);
        let settings = self.settings().await?;
        if settings.as_ref().map(|s| s.target_url.as_str()) != Some(self.target_url.as_str()) {
            // The app has one target URL for all its subscriptions; its throttling is kept.
            let throttling = settings
                .and_then(|s| s.throttling)
                .unwrap_or_else(|| json!({"maxConcurrentRequests": MAX_CONCURRENT_REQUESTS}));
            let body = json!({"targetUrl": self.target_url, "throttling": throttling});
            self.send(self.request(reqwest::Method::PUT, "/settings").json(&body))
                .await?;
            updated = true;
        }
        let found = self.subscriptions().await?;
        for wanted in WANTED {
            let matching: Vec<&Found> = found.iter().filter(|f| wanted.matches(f)).collect();
            if matching.iter().any(|f| f.active) {
                continue;
            }
            match matching.first() {
                Some(inactive) => {
                    let path = format!("/subscriptions/{}", id_segment(&inactive.id));
                    let body = json!({"active": true});
                    self.send(self.request(reqwest::Method::PATCH, &path).json(&body))
                        .await?;
                    updated = true;
                }
                None => {
                    let mut body = json!({"eventType": wanted.event_type, "active": true});
                    if let Some(property) = wanted.property {
                        body["propertyName"] = json!(property);
                    }
                    self.send(
                        self.request(reqwest::Method::POST, "/subscriptions")
                            .json(&body),
                    )
                    .await?;
                    created = true;
                }
            }
        }
        let connected = match (created, updated) {
            (true, _) => Connected::Created,
            (false, true) => Connected::Updated,
            (false, false) => Connected::Reused,
        };
        Ok((connected, self.state().await?))
    }
}

/// What HubSpot's answers say of this bridge's subscriptions.
fn state_of(settings: Option<&Settings>, found: &[Found], target_url: &str) -> Subscription {
    let missing: Vec<String> = WANTED
        .iter()
        .filter(|wanted| !found.iter().any(|f| wanted.matches(f)))
        .map(Wanted::name)
        .collect();
    let inactive: Vec<String> = WANTED
        .iter()
        .filter(|wanted| {
            let mut matching = found.iter().filter(|f| wanted.matches(f)).peekable();
            matching.peek().is_some() && !matching.any(|f| f.active)
        })
        .map(Wanted::name)
        .collect();
    let (state, detail) = if !missing.is_empty() {
        (
            SubscriptionState::Missing,
            format!("the app has no subscription to {}", missing.join(" or ")),
        )
    } else if settings.map(|s| s.target_url.as_str()) != Some(target_url) {
        let sent_to = settings.map_or("no target URL".into(), |s| origin(&s.target_url));
        (
            SubscriptionState::WrongUrl,
            format!("the app's webhooks go to {sent_to}, not {target_url}"),
        )
    } else if !inactive.is_empty() {
        (
            SubscriptionState::Inactive,
            format!("paused in the app: {}", inactive.join(", ")),
        )
    } else {
        (
            SubscriptionState::Ok,
            format!(
                "{} active, sent to {target_url}",
                WANTED.map(|w| w.name()).join(" and ")
            ),
        )
    };
    Subscription { state, detail }
}

/// The scheme and host of another URL: its path may hold someone's secret.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => format!(
            "{}://{}/…",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ),
        Err(_) => "an unreadable URL".into(),
    }
}

/// A subscription id as a path segment: HubSpot documents it as a string, sends a number.
fn id_segment(id: &Value) -> String {
    let text = match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|error| FetchError::Transient {
        status: None,
        detail: format!("the webhooks API's answer is unreadable: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "https://bridge.example.com/webhooks/hubspot";

    fn found(event_type: &str, property: Option<&str>, active: bool) -> Found {
        Found {
            id: json!(7),
            event_type: event_type.into(),
            property_name: property.map(str::to_owned),
            active,
        }
    }

    fn settings(url: &str) -> Settings {
        Settings {
            target_url: url.into(),
            throttling: None,
        }
    }

    #[test]
    fn each_state_names_what_it_saw() {
        let both = [
            found("contact.creation", None, true),
            found("contact.propertyChange", Some("email"), true),
        ];
        let ok = state_of(Some(&settings(TARGET)), &both, TARGET);
        assert_eq!(ok.state, SubscriptionState::Ok);

        let other_property = [
            found("contact.creation", None, true),
            found("contact.propertyChange", Some("lastname"), true),
        ];
        let missing = state_of(Some(&settings(TARGET)), &other_property, TARGET);
        assert_eq!(missing.state, SubscriptionState::Missing);
        assert!(
            missing.detail.contains("contact.propertyChange (email)"),
            "{}",
            missing.detail
        );

        let elsewhere = state_of(
            Some(&settings("https://old.example.com/hooks/s3cret")),
            &both,
            TARGET,
        );
        assert_eq!(elsewhere.state, SubscriptionState::WrongUrl);
        assert!(!elsewhere.detail.contains("s3cret"), "{}", elsewhere.detail);
        assert_eq!(
            state_of(None, &both, TARGET).state,
            SubscriptionState::WrongUrl
        );

        let paused = [
            found("contact.creation", None, false),
            found("contact.propertyChange", Some("email"), true),
        ];
        let inactive = state_of(Some(&settings(TARGET)), &paused, TARGET);
        assert_eq!(inactive.state, SubscriptionState::Inactive);
        assert!(
            inactive.detail.contains("contact.creation"),
            "{}",
            inactive.detail
        );
    }

    #[test]
    fn a_subscription_id_is_a_path_segment_whether_number_or_string() {
        assert_eq!(id_segment(&json!(2400001)), "2400001");
        assert_eq!(id_segment(&json!("24/1")), "24%2F1");
    }
}
