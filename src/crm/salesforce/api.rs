//! One authenticated GET against Salesforce's REST API: the access token (fetched once,
//! renewed on `INVALID_SESSION_ID`), the answer sorted into data, a limit to stop at, or a
//! failure retried within [`Retry`].

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::auth::{self, ClientCredentials};
use super::retry::Retry;
use crate::crm::listing::ListStats;
use crate::crm::{FetchError, http_client};
use crate::metrics::Metrics;
use crate::upstream::{self, parse_retry_after};

/// The name the API's reads are counted under.
const CRM: &str = "salesforce";

/// The org's daily API use as `Sforce-Limit-Info: api-usage=N/M` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let info = headers.get("sforce-limit-info")?.to_str().ok()?;
        let usage = info
            .split(';')
            .find_map(|part| part.trim().strip_prefix("api-usage="))?;
        let (used, limit) = usage.split_once('/')?;
        Some(Self {
            used: used.trim().parse().ok()?,
            limit: limit.trim().parse().ok()?,
        })
    }
}

impl fmt::Display for ApiUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.used, self.limit)
    }
}

/// How one answer reads.
enum Answer {
    Data(Vec<u8>),
    /// 401 `INVALID_SESSION_ID`: the token expired or was revoked; a new one may work.
    SessionInvalid,
    /// 403 `REQUEST_LIMIT_EXCEEDED`: the org's API requests are used up (daily, or concurrent).
    LimitExceeded {
        retry_after: Option<Duration>,
    },
    Failed(FetchError),
}

pub(super) struct Api {
    http: reqwest::Client,
    credentials: ClientCredentials,
    retry: Retry,
    metrics: Metrics,
    /// The last `Sforce-Limit-Info` seen, for the run's log line and a limit's error.
    usage: std::sync::Mutex<Option<ApiUsage>>,
}

impl Api {
    pub(super) fn new(
        instance: &Url,
        client_id: String,
        client_secret: SecretString,
        timeout: Duration,
        retry: Retry,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(timeout)?,
            credentials: ClientCredentials::new(instance, client_id, client_secret)?,
            retry,
            metrics,
            usage: std::sync::Mutex::new(None),
        })
    }

    /// The org's API use as last reported.
    pub(super) fn usage(&self) -> Option<ApiUsage> {
        self.usage.lock().ok().and_then(|usage| *usage)
    }

    /// GETs `url` with the access token: one renewal after `INVALID_SESSION_ID`, and up to
    /// `retry.retries` retries after a 429, a 5xx, no answer, or a limit with a Retry-After.
    /// Every request sent (the token's too) is counted in `stats`.
    pub(super) async fn get(
        &self,
        url: &Url,
        stats: &mut ListStats,
    ) -> Result<Vec<u8>, FetchError> {
        let mut renewed = false;
        let mut retry = 0;
        loop {
            let answer = match self.token(stats).await {
                Ok(token) => self.send_get(url, &token, stats).await,
                Err(error) => Answer::Failed(error),
            };
            // What to wait for before trying again, and the error if the retry is not made.
            let (retry_after, error) = match answer {
                Answer::Data(body) => return Ok(body),
                Answer::SessionInvalid if !renewed => {
                    renewed = true;
                    self.credentials.forget().await;
                    continue;
                }
                // A fresh token refused too: the app or its Run As user lost API access.
                Answer::SessionInvalid => return Err(FetchError::Unauthorized { status: 401 }),
                Answer::LimitExceeded { retry_after } => {
                    stats.rate_limited += 1;
                    if retry_after.is_none() || !self.retry.pause(retry, retry_after).await {
                        return Err(self.limit_exceeded(retry_after));
                    }
                    retry += 1;
                    continue;
                }
                Answer::Failed(FetchError::RateLimited { retry_after }) => {
                    stats.rate_limited += 1;
                    (retry_after, FetchError::RateLimited { retry_after })
                }
                Answer::Failed(error @ FetchError::Transient { .. }) => (None, error),
                Answer::Failed(error) => return Err(error),
            };
            if !self.retry.pause(retry, retry_after).await {
                return Err(error);
            }
            retry += 1;
        }
    }

    /// The daily limit is the org's, shared with every integration: waiting here would hold the
    /// run for hours, so it stops; the next run starts from the same watermark.
    fn limit_exceeded(&self, retry_after: Option<Duration>) -> FetchError {
        tracing::warn!(
            api_usage = self.usage().map(|u| u.to_string()),
            "Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's API request limit is used up; the reconcile stops and the next one resumes from its watermark"
        );
        FetchError::RateLimited { retry_after }
    }

    #[tracing::instrument(name = "salesforce.get", skip_all, fields(status))]
    async fn send_get(&self, url: &Url, token: &SecretString, stats: &mut ListStats) -> Answer {
        stats.requests += 1;
        let request = self
            .http
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .header("accept", "application/json");
        let (status, headers, body) = match self.send(request).await {
            Ok(answer) => answer,
            Err(error) => return Answer::Failed(error),
        };
        if let Some(usage) = ApiUsage::from_headers(&headers)
            && let Ok(mut last) = self.usage.lock()
        {
            *last = Some(usage);
        }
        match (status.as_u16(), error_code(&body).as_deref()) {
            (200..=299, _) => Answer::Data(body),
            (401, Some("INVALID_SESSION_ID")) => Answer::SessionInvalid,
            (403, Some("REQUEST_LIMIT_EXCEEDED")) => Answer::LimitExceeded {
                retry_after: retry_after(&headers),
            },
            _ => Answer::Failed(failure(status, &headers, &body)),
        }
    }

    /// The access token in use, or a new one from the token endpoint (held locked meanwhile,
    /// so concurrent calls fetch one).
    async fn token(&self, stats: &mut ListStats) -> Result<SecretString, FetchError> {
        let mut held = self.credentials.held().await;
        if let Some(token) = held.as_ref() {
            return Ok(token.clone());
        }
        stats.requests += 1;
        let (status, headers, body) = self.send(self.credentials.request(&self.http)).await?;
        let token = auth::read_token(status, &headers, &body)?;
        *held = Some(token.clone());
        Ok(token)
    }

    /// Sends `request` and reads the whole answer, counting it in the metrics.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, HeaderMap, Vec<u8>), FetchError> {
        let answer = crate::crm::send(request, &self.metrics, CRM).await?;
        Ok((answer.status, answer.headers, answer.body))
    }
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The `errorCode` of a REST error answer, `[{"message": …, "errorCode": …}]`.
fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let first = value.as_array()?.first()?;
    first.get("errorCode")?.as_str().map(str::to_owned)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// Any other answer, sorted the way every upstream's is (a 403 is refused access).
pub(super) fn failure(status: reqwest::StatusCode, headers: &HeaderMap, body: &[u8]) -> FetchError {
    match upstream::classify(status, headers, body, None) {
        Ok(()) => FetchError::Transient {
            status: Some(status.as_u16()),
            detail: "unexpected answer".into(),
        },
        Err(failure) => FetchError::from_failure(failure, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_info_header_gives_the_orgs_api_usage() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "sforce-limit-info",
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
                .parse()
                .expect("value"),
        );
        assert_eq!(
            ApiUsage::from_headers(&headers),
            Some(ApiUsage {
                used: 25,
                limit: 5000
            })
        );
        headers.insert(
            "sforce-limit-info",
            "api-usage=x/5000".parse().expect("value"),
        );
        assert_eq!(ApiUsage::from_headers(&headers), None);
    }

    #[test]
    fn an_error_answer_names_its_code() {
        let body =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(error_code(body).as_deref(), Some("INVALID_SESSION_ID"));
        assert_eq!(error_code(b"<html>"), None);
    }
}
