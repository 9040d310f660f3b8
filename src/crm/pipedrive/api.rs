//! Pipedrive's API as reconcile and connect call it: the token in the `x-api-token` header, and
//! each answer sorted together with its rate-limit headers (the 2-second burst window and the
//! company's daily token budget), which [`pacing`](super::pacing) acts on.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};

use super::WINDOW;
use crate::crm::{FetchError, http_client};
use crate::metrics::Metrics;

/// The API root and the token, as the clients of this module share them.
#[derive(Clone)]
pub(super) struct Api {
    http: reqwest::Client,
    /// `api_base_url` without a trailing slash.
    base: String,
    /// Sent as `x-api-token`, never as `?api_token=` (which proxies would log).
    token: HeaderValue,
    metrics: Metrics,
}

/// What Pipedrive's rate-limit headers said about the token's budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Limits {
    /// `x-ratelimit-remaining`: requests left in the current 2-second burst window.
    pub burst_left: Option<u64>,
    /// `x-ratelimit-reset`: seconds until that window resets.
    pub burst_reset: Option<Duration>,
    /// `x-daily-ratelimit-token-remaining`: the company's API tokens left today (it resets at
    /// midnight, so a 429 with 0 is not worth waiting for).
    pub daily_left: Option<u64>,
}

impl Limits {
    fn read(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            burst_left: number("x-ratelimit-remaining"),
            burst_reset: number("x-ratelimit-reset").map(Duration::from_secs),
            daily_left: number("x-daily-ratelimit-token-remaining"),
        }
    }

    pub fn daily_budget_spent(&self) -> bool {
        self.daily_left == Some(0)
    }
}

/// A sorted answer: the body of a 2xx, or why not; the limits either way.
pub(super) type Answer = (Result<Vec<u8>, FetchError>, Limits);

impl Api {
    pub fn new(base_url: &str, token: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let base = base_url.trim().trim_end_matches('/');
        reqwest::Url::parse(base).context("Failed to parse sources.pipedrive.api_base_url")?;
        let mut token = HeaderValue::from_str(token.expose_secret().trim()).map_err(|_| {
            anyhow::anyhow!("sources.pipedrive.api_token is not a valid header value")
        })?;
        token.set_sensitive(true);
        Ok(Self {
            http: http_client(timeout)?,
            base: base.to_owned(),
            token,
            metrics: Metrics::default(),
        })
    }

    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.clone();
        self
    }

    /// `{base}{path}`, e.g. `/api/v2/persons`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `url` carrying the token.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header("x-api-token", self.token.clone())
    }

    /// Sends `request` and sorts the answer (a 429 waits for Retry-After, else the window's
    /// reset); counted in the CRM read metrics.
    pub async fn send(&self, request: RequestBuilder) -> Answer {
        match crate::crm::send(request, &self.metrics, "pipedrive").await {
            Ok(answer) => {
                let limits = Limits::read(&answer.headers);
                (answer.sorted(WINDOW), limits)
            }
            Err(error) => (Err(error), Limits::default()),
        }
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_read_from_pipedrives_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-ratelimit-limit", "40"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2"),
            ("x-daily-ratelimit-token-remaining", "0"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let limits = Limits::read(&headers);
        assert_eq!(limits.burst_left, Some(0));
        assert_eq!(limits.burst_reset, Some(Duration::from_secs(2)));
        assert!(limits.daily_budget_spent());
        assert!(!Limits::read(&HeaderMap::new()).daily_budget_spent());
    }

    #[test]
    fn the_token_never_prints() {
        let api = Api::new(
            "https://api.pipedrive.com/",
            &SecretString::from("pd-token-value"),
            Duration::from_secs(1),
        )
        .expect("api");
        assert!(!format!("{api:?}").contains("pd-token-value"));
        assert_eq!(
            api.url("/v1/webhooks"),
            "https://api.pipedrive.com/v1/webhooks"
        );
    }
}
