//! The bearer token every Tallyfy call carries: a personal access token as configured, or an OAuth
//! token held in memory only and renewed before it expires, one renewal for all concurrent callers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::error::CallError;
use super::jwt;
use super::oauth::{self, Grant, Issued, OAuthConfig};
use crate::configuration::TallyfyAuth;
use crate::metrics::Metrics;

/// Milliseconds since the Unix epoch, as the caller's clock says (tests move it by hand).
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Renew this share of a token's lifetime before it ends ...
const RENEW_SHARE: u32 = 10;
/// ... but never more than this early.
const RENEW_MARGIN_CAP: Duration = Duration::from_secs(300);
/// How soon a failed renewal is tried again while the current token is still valid.
const RETRY_RENEWAL: Duration = Duration::from_secs(30);
/// How long before a known expiry `/status` and the log start warning.
pub(super) const WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);
/// How often the log repeats the warning.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(86_400);

/// One issue of the bearer token. Never printed.
#[derive(Clone)]
pub(crate) struct Token {
    header: HeaderValue,
    secret: SecretString,
    /// Which issue: a 401 for an older one needs no renewal of its own.
    generation: u64,
}

impl Token {
    fn new(secret: SecretString, generation: u64) -> Result<Self, String> {
        let mut header = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
            .map_err(|_| "is not a valid HTTP header value".to_owned())?;
        header.set_sensitive(true);
        Ok(Self {
            header,
            secret,
            generation,
        })
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    pub(crate) fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

/// What `/status` and the expiry warning read, kept apart from the token itself.
#[derive(Debug, Default, Clone)]
pub(super) struct Report {
    pub expires_at: Option<i64>,
    pub last_renewal_at: Option<i64>,
    pub last_renewal_error: Option<String>,
    pub last_warned_at: Option<i64>,
}

enum Source {
    /// A personal access token: used as it is; nothing to renew.
    Personal(Token),
    OAuth(Box<OAuth>),
}

struct OAuth {
    http: reqwest::Client,
    config: OAuthConfig,
    /// Held across a renewal: callers arriving meanwhile wait for it and share its result.
    held: tokio::sync::Mutex<Held>,
    /// Renewals finished (either way); a caller that waited through one takes its result.
    renewals: AtomicU64,
}

struct Current {
    token: Token,
    /// When to renew (a margin before `expires_at`); `None`: only after a 401.
    renew_at: Option<i64>,
    expires_at: Option<i64>,
}

#[derive(Default)]
struct Held {
    current: Option<Current>,
    refresh: Option<SecretString>,
    generation: u64,
    last_failure: Option<CallError>,
}

pub struct Credentials {
    mode: TallyfyAuth,
    source: Source,
    now: Now,
    report: Mutex<Report>,
    metrics: Metrics,
}

impl Credentials {
    /// `tallyfy.auth = "token"`: `token` as it is; its expiry is known when it is a JWT.
    pub fn personal(token: SecretString, now: Now) -> anyhow::Result<Self> {
        let expires_at = jwt::expires_at_ms(token.expose_secret());
        let token = Token::new(token, 0)
            .map_err(|problem| anyhow::anyhow!("Tallyfy token {problem} (value not shown)"))?;
        Ok(Self {
            mode: TallyfyAuth::Token,
            source: Source::Personal(token),
            now,
            report: Mutex::new(Report {
                expires_at,
                ..Report::default()
            }),
            metrics: Metrics::default(),
        })
    }

    /// An OAuth mode: tokens asked of `config.token_url` when first needed and renewed after.
    pub fn oauth(
        config: OAuthConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
        now: Now,
    ) -> anyhow::Result<Self> {
        let mode = if config.user.is_some() {
            TallyfyAuth::Password
        } else {
            TallyfyAuth::ClientCredentials
        };
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tallyfy-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("Failed to build the Tallyfy token endpoint's HTTP client")?;
        Ok(Self {
            mode,
            source: Source::OAuth(Box::new(OAuth {
                http,
                config,
                held: tokio::sync::Mutex::default(),
                renewals: AtomicU64::new(0),
            })),
            now,
            report: Mutex::default(),
            metrics: Metrics::default(),
        })
    }

    /// The same credentials, showing the token's expiry in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        metrics.credentials_expire_at(self.report().expires_at);
        self.metrics = metrics;
        self
    }

    pub fn mode(&self) -> TallyfyAuth {
        self.mode
    }

    pub(super) fn now_ms(&self) -> i64 {
        (self.now)()
    }

    pub(super) fn report(&self) -> MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token to send now, renewed first when it is due.
    pub(crate) async fn token(&self) -> Result<Token, CallError> {
        let oauth = match &self.source {
            Source::Personal(token) => return Ok(token.clone()),
            Source::OAuth(oauth) => oauth,
        };
        let seen = oauth.renewals.load(Ordering::Acquire);
        let mut held = oauth.held.lock().await;
        let now = self.now_ms();
        if let Some(current) = &held.current
            && current.renew_at.is_none_or(|at| now < at)
        {
            return Ok(current.token.clone());
        }
        if let Some(failure) = shared_failure(oauth, &held, seen) {
            return Err(failure);
        }
        self.renew(oauth, &mut held, true).await
    }

    /// After Tallyfy answered 401 to `refused`: a renewed token to try once more with, or `None`
    /// when there is nothing to renew (a personal access token).
    pub(crate) async fn renew_after_refusal(
        &self,
        refused: &Token,
    ) -> Result<Option<Token>, CallError> {
        let oauth = match &self.source {
            Source::Personal(_) => return Ok(None),
            Source::OAuth(oauth) => oauth,
        };
        let seen = oauth.renewals.load(Ordering::Acquire);
        let mut held = oauth.held.lock().await;
        // Another caller renewed since `refused` was issued: its token is the one to try.
        if let Some(current) = &held.current
            && current.token.generation != refused.generation
        {
            return Ok(Some(current.token.clone()));
        }
        if let Some(failure) = shared_failure(oauth, &held, seen) {
            return Err(failure);
        }
        tracing::info!("Tallyfy refused the token (HTTP 401): renewing it");
        held.current = None;
        self.renew(oauth, &mut held, false).await.map(Some)
    }

    /// Asks for a new token (`held` locked, so one renewal runs at a time). When the renewal
    /// fails but the current token has not expired yet (`keep_valid`), that one is used and the
    /// renewal tried again a little later.
    async fn renew(
        &self,
        oauth: &OAuth,
        held: &mut Held,
        keep_valid: bool,
    ) -> Result<Token, CallError> {
        let asked = self.ask(oauth, held).await;
        let now = self.now_ms();
        let outcome = asked.and_then(|issued| self.take(held, issued, now));
        oauth.renewals.fetch_add(1, Ordering::Release);
        let mut report = self.report();
        let refusal = match outcome {
            Ok(token) => {
                report.last_renewal_at = Some(now);
                report.last_renewal_error = None;
                report.expires_at = held.current.as_ref().and_then(|c| c.expires_at);
                drop(report);
                self.metrics.credentials_expire_at(self.report().expires_at);
                held.last_failure = None;
                return Ok(token);
            }
            Err(refusal) => refusal,
        };
        tracing::warn!(reason = %refusal.reason, "Failed to renew the Tallyfy token");
        report.last_renewal_error = Some(refusal.reason.clone());
        drop(report);
        let failure = CallError::Credentials {
            status: refusal.status,
            reason: format!(
                "Tallyfy credentials could not be renewed: {}",
                refusal.reason
            ),
        };
        held.last_failure = Some(failure.clone());
        if keep_valid
            && let Some(current) = &mut held.current
            && current.expires_at.is_some_and(|at| now < at)
        {
            current.renew_at = Some(now + RETRY_RENEWAL.as_millis() as i64);
            return Ok(current.token.clone());
        }
        held.current = None;
        Err(failure)
    }

    /// `password` mode refreshes when it can and asks with the password when the refresh token
    /// is refused; `client_credentials` asks again (there is no refresh for it).
    async fn ask(&self, oauth: &OAuth, held: &mut Held) -> Result<Issued, oauth::Refused> {
        let grant = match (self.mode, &held.refresh) {
            (TallyfyAuth::Password, Some(refresh)) => {
                match oauth::request(&oauth.http, &oauth.config, Grant::Refresh(refresh)).await {
                    Err(refusal) if refusal.grant_rejected => {
                        tracing::info!("The refresh token was refused: asking with the password");
                        held.refresh = None;
                        Grant::Password
                    }
                    other => return other,
                }
            }
            (TallyfyAuth::Password, None) => Grant::Password,
            _ => Grant::ClientCredentials,
        };
        oauth::request(&oauth.http, &oauth.config, grant).await
    }

    /// Keeps `issued` as the current token, due for renewal a margin before it expires.
    fn take(&self, held: &mut Held, issued: Issued, now: i64) -> Result<Token, oauth::Refused> {
        let generation = held.generation + 1;
        let token = Token::new(issued.access, generation).map_err(|problem| oauth::Refused {
            status: None,
            reason: format!("the access_token it issued {problem}: check tallyfy.token_url"),
            grant_rejected: false,
        })?;
        let at = |d: Duration| now + d.as_millis() as i64;
        if let Some(refresh) = issued.refresh {
            held.refresh = Some(refresh);
        }
        held.generation = generation;
        held.current = Some(Current {
            token: token.clone(),
            renew_at: issued
                .expires_in
                .map(|d| at(d.saturating_sub(renew_margin(d)))),
            expires_at: issued.expires_in.map(at),
        });
        tracing::info!(
            expires_in_secs = issued.expires_in.map(|d| d.as_secs()),
            "Tallyfy token renewed"
        );
        Ok(token)
    }
}

/// The failure of a renewal that finished while this caller waited for the lock: shared rather
/// than asked again at once by every waiting caller.
fn shared_failure(oauth: &OAuth, held: &Held, seen: u64) -> Option<CallError> {
    let finished_meanwhile = oauth.renewals.load(Ordering::Acquire) != seen;
    held.last_failure.clone().filter(|_| finished_meanwhile)
}

/// How long before expiry a token is renewed: 10 % of its life, at most 5 minutes.
pub(super) fn renew_margin(lifetime: Duration) -> Duration {
    (lifetime / RENEW_SHARE).min(RENEW_MARGIN_CAP)
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Personal(_) => "personal access token [REDACTED]".to_owned(),
            Source::OAuth(oauth) => format!("{:?}", oauth.config),
        };
        f.debug_struct("Credentials")
            .field("mode", &self.mode.as_str())
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_a_tenth_of_the_lifetime_early_at_most_five_minutes() {
        let secs = Duration::from_secs;
        assert_eq!(renew_margin(secs(60)), secs(6));
        assert_eq!(renew_margin(secs(2400)), secs(240));
        assert_eq!(renew_margin(secs(3600)), secs(300));
        assert_eq!(renew_margin(secs(7 * 86_400)), secs(300));
    }

    #[test]
    fn a_token_never_prints_and_its_header_is_sensitive() {
        let token = Token::new(SecretString::from("tok-VERY-secret"), 3).expect("valid");
        assert_eq!(format!("{token:?}"), "Token([REDACTED])");
        assert!(token.header().is_sensitive());
        assert!(Token::new(SecretString::from("a\nb"), 0).is_err());
        let credentials =
            Credentials::personal(SecretString::from("tok-VERY-secret"), Arc::new(|| 0))
                .expect("valid");
        assert!(!format!("{credentials:?}").contains("VERY"));
    }
}
