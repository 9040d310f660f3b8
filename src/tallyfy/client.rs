//! The HTTP client proper: one pooled `reqwest::Client`, Tallyfy's required headers on every
//! call, and the two guest operations the bridge needs (create, find by email).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};

use super::credentials::{Credentials, Token};
use super::error::{self, CallError};
use super::redact::redact;
use super::types::{GuestId, GuestRequest};
use crate::domain::Guest;
use crate::metrics::Metrics;
use crate::upstream::{self, Failure};

/// Everything but RFC 3986 unreserved characters, so `@`, `+` and `/` are escaped in a segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Tallyfy rejects requests without this header.
const CLIENT_HEADER: &str = "x-tallyfy-client";
const CLIENT_HEADER_VALUE: &str = "APIClient";

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// e.g. `https://go.tallyfy.com/api` or `https://api.tallyfy.com`; a trailing `/` is fine.
    pub base_url: String,
    pub org_id: String,
    /// Where every call's bearer token comes from.
    pub credentials: Arc<Credentials>,
    pub connect_timeout: Duration,
    /// Whole call, connect to last body byte.
    pub request_timeout: Duration,
}

pub struct TallyfyClient {
    http: reqwest::Client,
    /// `{base}/organizations/{org}/guests`, parsed once: a create sends it as it is (parsing
    /// it anew for each call cost more than the JSON of the answer).
    guests_url: reqwest::Url,
    credentials: Arc<Credentials>,
    metrics: Metrics,
}

/// A response that arrived completely.
struct Received {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    /// The shared classification; Tallyfy has no rate-limit window header.
    fn sorted(&self) -> Result<(), Failure> {
        upstream::classify(self.status, &self.headers, &self.body, None)
    }
}

impl TallyfyClient {
    pub fn new(config: ClientConfig) -> anyhow::Result<Self> {
        let base = config.base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).context("Failed to parse the Tallyfy base_url")?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!(
                "Tallyfy base_url must be http(s), got scheme {:?}",
                parsed.scheme()
            );
        }
        if config.org_id.trim().is_empty() {
            bail!("Tallyfy org_id is empty");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirected POST turns into a GET: surface 3xx as an error instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tallyfy-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("Failed to build the Tallyfy HTTP client")?;
        let org = utf8_percent_encode(config.org_id.trim(), SEGMENT);
        let guests_url = reqwest::Url::parse(&format!("{base}/organizations/{org}/guests"))
            .context("Failed to parse the Tallyfy guests URL")?;
        Ok(Self {
            http,
            guests_url,
            credentials: config.credentials,
            metrics: Metrics::default(),
        })
    }

    /// The same client, counting its calls in `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// `POST /organizations/{org}/guests`. Any 2xx is success; per current docs an existing
    /// guest is linked and returned (2xx), per older docs it is a 422.
    ///
    /// A 2xx without a readable id is reported as `Transient { may_have_reached: true }`:
    /// Tallyfy did act, so the worker must look the guest up rather than fail or re-POST.
    #[tracing::instrument(name = "tallyfy.create_guest", skip_all, fields(status))]
    pub async fn create_guest(&self, guest: &Guest) -> Result<GuestId, CallError> {
        tracing::debug!(email = %guest.email, "creating Tallyfy guest");
        let body = GuestRequest::from(guest);
        let (received, token) = self
            .send("create", || {
                self.http
                    .request(Method::POST, self.guests_url.clone())
                    .json(&body)
            })
            .await?;
        match received.sorted() {
            Ok(()) => id_or_protocol_error(&received),
            Err(failure) => Err(error::from_failure(failure, &received.body)),
        }
        .map_err(|e| e.scrub(token.expose()))
    }

    /// `GET /organizations/{org}/guests/{email}`: any 2xx is found, 404 is not found.
    /// The email is sent as given; normalising it is the caller's job.
    #[tracing::instrument(name = "tallyfy.find_guest", skip_all, fields(status))]
    pub async fn find_guest(&self, email: &str) -> Result<Option<GuestId>, CallError> {
        tracing::debug!(%email, "looking up Tallyfy guest");
        let url = format!(
            "{}/{}",
            self.guests_url,
            utf8_percent_encode(email, SEGMENT)
        );
        let (received, token) = self
            .send("find", || self.http.request(Method::GET, &url))
            .await?;
        match received.sorted() {
            Ok(()) => id_or_protocol_error(&received).map(Some),
            Err(Failure::NotFound) => Ok(None),
            Err(failure) => Err(error::from_failure(failure, &received.body)),
        }
        .map_err(|e| e.scrub(token.expose()))
    }

    /// Sends the request `build` makes with the current token; after a 401, once more with a
    /// renewed one where the credentials can renew (a 401 created nothing, so a create is safe
    /// to repeat). Returns the answer and the token it was sent with.
    async fn send(
        &self,
        operation: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<(Received, Token), CallError> {
        let token = self.credentials.token().await?;
        let received = self.execute(operation, build(), &token).await?;
        if received.status != StatusCode::UNAUTHORIZED {
            return Ok((received, token));
        }
        match self.credentials.renew_after_refusal(&token).await? {
            Some(renewed) => {
                let received = self.execute(operation, build(), &renewed).await?;
                Ok((received, renewed))
            }
            None => Ok((received, token)),
        }
    }

    /// Sends `request`, counted in the metrics as `operation`.
    async fn execute(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        token: &Token,
    ) -> Result<Received, CallError> {
        let transport = |e: reqwest::Error| {
            error::from_failure(upstream::transport(e), &[]).scrub(token.expose())
        };
        let request = request
            .header(ACCEPT, "application/json")
            .header(CLIENT_HEADER, CLIENT_HEADER_VALUE)
            .header(AUTHORIZATION, token.header().clone());
        let started = Instant::now();
        let sent = request.send().await;
        let status = sent.as_ref().ok().map(|r| r.status().as_u16());
        self.metrics
            .tallyfy_call(operation, status, started.elapsed());
        let response = sent.map_err(transport)?;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        let headers = response.headers().clone();
        // Redacted before anything cuts an excerpt from it, which could keep half the token.
        let body = redact(
            response.bytes().await.map_err(transport)?.to_vec(),
            token.expose(),
        );
        tracing::info!(status = status.as_u16(), "Tallyfy answered");
        Ok(Received {
            status,
            headers,
            body,
        })
    }
}

fn id_or_protocol_error(received: &Received) -> Result<GuestId, CallError> {
    GuestId::from_body(&received.body).ok_or_else(|| CallError::Transient {
        may_have_reached: true,
        status: Some(received.status.as_u16()),
        detail: format!(
            "success response without a guest id: {}",
            upstream::excerpt(&received.body)
        ),
    })
}

impl fmt::Debug for TallyfyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TallyfyClient")
            .field("guests_url", &self.guests_url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    const TOKEN: &str = "tok_VERY_SECRET_value_42";

    fn personal(token: &str) -> anyhow::Result<Arc<Credentials>> {
        Credentials::personal(SecretString::from(token.to_owned()), Arc::new(|| 0)).map(Arc::new)
    }

    fn config(base: &str) -> ClientConfig {
        ClientConfig {
            base_url: base.to_owned(),
            org_id: "org 1".to_owned(),
            credentials: personal(TOKEN).expect("a valid token"),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn base_url_is_joined_with_or_without_trailing_slash() {
        for base in ["https://go.tallyfy.com/api", "https://go.tallyfy.com/api/"] {
            let client = TallyfyClient::new(config(base)).unwrap();
            assert_eq!(
                client.guests_url.as_str(),
                "https://go.tallyfy.com/api/organizations/org%201/guests"
            );
        }
        let client = TallyfyClient::new(config("https://api.tallyfy.com")).unwrap();
        assert_eq!(
            client.guests_url.as_str(),
            "https://api.tallyfy.com/organizations/org%201/guests"
        );
    }

    #[test]
    fn bad_config_is_rejected_without_echoing_the_token() {
        assert!(TallyfyClient::new(config("not a url")).is_err());
        assert!(TallyfyClient::new(config("ftp://x")).is_err());
        let err = personal("line\nbreak").unwrap_err();
        assert!(!format!("{err:#}").contains("line"));
    }

    #[test]
    fn email_segment_escapes_plus_and_at() {
        let encoded = utf8_percent_encode("Jane+Tag@Example.com", SEGMENT).to_string();
        assert_eq!(encoded, "Jane%2BTag%40Example.com");
    }

    #[test]
    fn token_never_appears_in_debug_or_errors() {
        let client = TallyfyClient::new(config("https://x")).unwrap();
        let errors = [
            CallError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
            },
            CallError::RateLimited { retry_after: None },
            CallError::Unauthorized { status: 401 },
            CallError::Unprocessable {
                message: format!("echo {TOKEN}"),
            },
            CallError::Transient {
                may_have_reached: true,
                status: Some(502),
                detail: format!("Bearer {TOKEN}"),
            },
            CallError::Permanent {
                status: 400,
                excerpt: format!("{TOKEN}!"),
            },
        ];
        let mut rendered = vec![format!("{client:?}"), format!("{:?}", config("https://x"))];
        for err in errors {
            let err = err.scrub(TOKEN);
            rendered.push(format!("{err}"));
            rendered.push(format!("{err:?}"));
        }
        for text in rendered {
            assert!(!text.contains(TOKEN), "token leaked in {text}");
        }
    }
}
