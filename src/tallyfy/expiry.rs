//! What operators see of the credentials before they fail: `/status`'s `tallyfy.credentials`
//! (mode, expiry, a warning from 14 days before it; renewals for OAuth) and a daily log warning.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::credentials::{Credentials, WARN_BEFORE, WARN_EVERY};
use crate::configuration::TallyfyAuth;
use crate::time::rfc3339;

/// How often the expiry watch looks; the warning itself repeats daily.
const WATCH_EVERY: Duration = Duration::from_secs(3600);

/// `/status`'s `tallyfy` section.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TallyfyStatus {
    /// `null` while delivery is off (no credentials are loaded).
    pub credentials: Option<CredentialsStatus>,
}

impl TallyfyStatus {
    pub fn of(credentials: Option<&Credentials>) -> Self {
        Self {
            credentials: credentials.map(CredentialsStatus::of),
        }
    }
}

/// The credentials in use, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CredentialsStatus {
    /// `token`, `client_credentials` or `password` (`tallyfy.auth`).
    pub mode: String,
    /// When the token in use expires, where known: a personal access token that is a JWT (its
    /// `exp`), or the `expires_in` of the last OAuth token.
    pub expires_at: Option<String>,
    /// Whole days left until `expires_at` (negative once past).
    pub expires_in_days: Option<i64>,
    /// Set from 14 days before a personal access token expires: what to do about it.
    pub warning: Option<String>,
    /// OAuth modes: when a token was last issued to the bridge.
    pub last_renewal_at: Option<String>,
    /// OAuth modes: why the last renewal failed (`null` once one succeeds).
    pub last_renewal_error: Option<String>,
}

impl CredentialsStatus {
    pub fn of(credentials: &Credentials) -> Self {
        let now = credentials.now_ms();
        let report = credentials.report().clone();
        Self {
            mode: credentials.mode().as_str().to_owned(),
            expires_at: report.expires_at.and_then(rfc3339),
            expires_in_days: report
                .expires_at
                .map(|at| (at - now).div_euclid(86_400_000)),
            warning: warning(credentials.mode(), report.expires_at, now),
            last_renewal_at: report.last_renewal_at.and_then(rfc3339),
            last_renewal_error: report.last_renewal_error,
        }
    }
}

/// The warning for a personal access token expiring at `expires_at`, from 14 days before.
/// (OAuth tokens are renewed by the bridge; their failures are `last_renewal_error`.)
fn warning(mode: TallyfyAuth, expires_at: Option<i64>, now: i64) -> Option<String> {
    let at = expires_at.filter(|_| mode == TallyfyAuth::Token)?;
    let left = at - now;
    if left > WARN_BEFORE.as_millis() as i64 {
        return None;
    }
    let when = rfc3339(at).unwrap_or_default();
    let what = if left <= 0 {
        format!("the Tallyfy personal access token expired at {when}")
    } else {
        let days = left.div_euclid(86_400_000);
        format!("the Tallyfy personal access token expires in {days} days (at {when})")
    };
    Some(format!(
        "{what}: create a new one (Tallyfy: Settings → Integrations → REST API), set tallyfy.token \
         and restart the bridge; webhooks keep being stored and wait meanwhile"
    ))
}

impl Credentials {
    /// The expiry warning, when one is due in the log now: in the window, and not logged in the
    /// last day. Marks it logged.
    pub(super) fn warning_due(&self) -> Option<String> {
        let now = self.now_ms();
        let mut report = self.report();
        let text = warning(self.mode(), report.expires_at, now)?;
        let recently = report
            .last_warned_at
            .is_some_and(|at| now - at < WARN_EVERY.as_millis() as i64);
        if recently {
            return None;
        }
        report.last_warned_at = Some(now);
        Some(text)
    }

    /// Logs the expiry warning if one is due (at start-up and from [`watch_expiry`]).
    pub fn warn_if_expiring(&self) {
        if let Some(warning) = self.warning_due() {
            tracing::warn!(%warning, "Tallyfy credentials expire soon");
        }
    }
}

/// Repeats the expiry warning once a day while it applies, until `stop`.
pub async fn watch_expiry(credentials: Arc<Credentials>, stop: CancellationToken) {
    loop {
        credentials.warn_if_expiring();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use secrecy::SecretString;

    use super::*;
    use crate::tallyfy::jwt;

    const DAY_MS: i64 = 86_400_000;

    fn at(clock: &Arc<AtomicI64>, token: &str) -> Credentials {
        let clock = clock.clone();
        Credentials::personal(
            SecretString::from(token.to_owned()),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        )
        .expect("a valid token")
    }

    #[test]
    fn a_jwt_token_shows_its_expiry_and_warns_from_fourteen_days_before() {
        let exp_secs = 1_900_000_000;
        let token = jwt::make(exp_secs);
        let clock = Arc::new(AtomicI64::new(exp_secs * 1000 - 20 * DAY_MS));
        let credentials = at(&clock, &token);

        let early = CredentialsStatus::of(&credentials);
        assert_eq!(early.mode, "token");
        assert_eq!(
            early.expires_at.as_deref(),
            Some("2030-03-17T17:46:40.000Z")
        );
        assert_eq!(early.expires_in_days, Some(20));
        assert_eq!(early.warning, None);
        assert_eq!(credentials.warning_due(), None);

        clock.fetch_add(7 * DAY_MS, Ordering::SeqCst);
        let close = CredentialsStatus::of(&credentials);
        assert_eq!(close.expires_in_days, Some(13));
        let warning = close.warning.clone().expect("a warning 13 days before");
        assert!(warning.contains("expires in 13 days"), "{warning}");
        assert!(warning.contains("tallyfy.token"), "{warning}");
        let printed = serde_json::to_string(&close).expect("json");
        assert!(!printed.contains(&token), "{printed}");

        clock.fetch_add(14 * DAY_MS, Ordering::SeqCst);
        let past = CredentialsStatus::of(&credentials);
        assert_eq!(past.expires_in_days, Some(-1));
        assert!(past.warning.expect("warns").contains("expired at"));
    }

    #[test]
    fn the_log_warning_comes_once_a_day_in_the_window() {
        let exp_secs = 1_900_000_000;
        let clock = Arc::new(AtomicI64::new(exp_secs * 1000 - 10 * DAY_MS));
        let credentials = at(&clock, &jwt::make(exp_secs));

        assert!(credentials.warning_due().is_some(), "at start");
        assert!(credentials.warning_due().is_none(), "not again at once");
        clock.fetch_add(DAY_MS - 1, Ordering::SeqCst);
        assert!(credentials.warning_due().is_none(), "not within the day");
        clock.fetch_add(1, Ordering::SeqCst);
        assert!(credentials.warning_due().is_some(), "a day later");
    }

    #[test]
    fn an_opaque_token_has_no_known_expiry_and_never_prints() {
        let clock = Arc::new(AtomicI64::new(0));
        let credentials = at(&clock, "opaque-secret-token-value");
        let status = CredentialsStatus::of(&credentials);
        assert_eq!((status.expires_at, status.warning), (None, None));
        assert!(credentials.warning_due().is_none());
        assert!(!format!("{credentials:?}").contains("opaque-secret"));
    }
}
