//! The admin API over HTTP for the command line: the bearer token from the environment, and any
//! answer that is not a success turned into one line (the API's message, never the token).

use std::time::Duration;

use anyhow::Context;
use reqwest::Url;
use serde_json::Value;

use super::TOKEN_VAR;

pub(super) struct Admin {
    base: Url,
    token: secrecy::SecretString,
    http: reqwest::Client,
}

impl Admin {
    pub(super) fn from_env(url: &str) -> anyhow::Result<Self> {
        let token = std::env::var(TOKEN_VAR)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .with_context(|| format!("{TOKEN_VAR} is not set: export the bridge's admin token"))?;
        let base = Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
        Ok(Self {
            base,
            token: token.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("Failed to build an HTTP client")?,
        })
    }

    /// The same client, waiting up to `timeout` for an answer (a reconcile runs before it
    /// answers).
    pub(super) fn with_timeout(mut self, timeout: Duration) -> anyhow::Result<Self> {
        self.http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("Failed to build an HTTP client")?;
        Ok(self)
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Url> {
        let mut url = self
            .base
            .join(path)
            .with_context(|| format!("Failed to make a URL of {path}"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    pub(super) async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = self.url(path, query)?;
        self.send(self.http.get(url.clone()), &url).await
    }

    pub(super) async fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = self.url(path, &[])?;
        let request = self.http.post(url.clone());
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.send(request, &url).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> anyhow::Result<Value> {
        use secrecy::ExposeSecret;
        let mut shown = url.clone();
        shown.set_query(None);
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|error| anyhow::anyhow!("Failed to reach {shown}: {}", error.without_url()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{shown} answered {status} without JSON"))?;
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let message = error["message"].as_str().unwrap_or("no message");
        let field = error["field"]
            .as_str()
            .map(|f| format!(" [{f}]"))
            .unwrap_or_default();
        anyhow::bail!("{message}{field} (HTTP {})", status.as_u16())
    }
}
