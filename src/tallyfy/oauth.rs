//! Tallyfy's OAuth token endpoint: one form-encoded POST per grant and its JSON answer; a refusal
//! becomes a reason naming the settings to check, never carrying a secret or the answer's text.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

/// Where and as whom the bridge asks for tokens.
#[derive(Clone)]
pub struct OAuthConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `password` mode's user; `None` in `client_credentials` mode.
    pub user: Option<(String, SecretString)>,
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .finish()
    }
}

/// One request's grant.
#[derive(Clone, Copy)]
pub(super) enum Grant<'a> {
    ClientCredentials,
    Password,
    Refresh(&'a SecretString),
}

impl Grant<'_> {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::Refresh(_) => "refresh_token",
        }
    }
}

/// A token the endpoint issued.
pub(super) struct Issued {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    pub expires_in: Option<Duration>,
}

/// Why no token came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    /// The token endpoint's status, `None` when it did not answer.
    pub status: Option<u16>,
    pub reason: String,
    /// The grant itself was refused (OAuth's `invalid_grant`): a refresh token that expired or
    /// was revoked, after which `password` mode asks with the password again.
    pub grant_rejected: bool,
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    /// A number, or a number as text.
    expires_in: Option<Value>,
}

/// Asks `config.token_url` for a token with `grant`.
pub(super) async fn request(
    http: &reqwest::Client,
    config: &OAuthConfig,
    grant: Grant<'_>,
) -> Result<Issued, Refused> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", grant.name()),
        ("client_id", &config.client_id),
        ("client_secret", config.client_secret.expose_secret()),
    ];
    match (grant, &config.user) {
        (Grant::Password, Some((username, password))) => {
            form.push(("username", username));
            form.push(("password", password.expose_secret()));
        }
        (Grant::Refresh(token), _) => form.push(("refresh_token", token.expose_secret())),
        _ => {}
    }
    let sent = http
        .post(config.token_url.trim())
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Err(unreachable(&error)),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Err(unreachable(&error)),
    };
    if status.is_success() {
        return issued(&body).ok_or_else(|| Refused {
            status: Some(status.as_u16()),
            reason: format!(
                "the token endpoint answered HTTP {} without an access_token: check tallyfy.token_url",
                status.as_u16()
            ),
            grant_rejected: false,
        });
    }
    Err(refused(status, &body, grant))
}

fn issued(body: &[u8]) -> Option<Issued> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let access = answer.access_token.filter(|t| !t.trim().is_empty())?;
    let expires_in = answer.expires_in.and_then(|v| match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Some(Issued {
        access: SecretString::from(access.trim().to_owned()),
        refresh: answer
            .refresh_token
            .filter(|t| !t.trim().is_empty())
            .map(|t| SecretString::from(t.trim().to_owned())),
        expires_in: expires_in.filter(|s| *s > 0).map(Duration::from_secs),
    })
}

fn unreachable(error: &reqwest::Error) -> Refused {
    let what = if error.is_timeout() {
        "did not answer in time"
    } else if error.is_connect() {
        "could not be reached"
    } else {
        "broke off its answer"
    };
    Refused {
        status: None,
        reason: format!(
            "the token endpoint {what}: check tallyfy.token_url and the network (delivery resumes once a renewal succeeds)"
        ),
        grant_rejected: false,
    }
}

/// OAuth's `error` code from the answer, when it is one (`invalid_client`): only such a code is
/// repeated, never free text that could echo what was sent.
fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    plain.then(|| code.to_owned())
}

fn refused(status: StatusCode, body: &[u8], grant: Grant<'_>) -> Refused {
    let code = error_code(body);
    let http = match &code {
        Some(code) => format!("HTTP {} {code}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let code = code.as_deref().unwrap_or("");
    let grant_rejected = code == "invalid_grant";
    let reason = match (status.as_u16(), code, grant) {
        (_, "invalid_client", _) | (401, "", _) => format!(
            "the token endpoint refused the client credentials ({http}): check tallyfy.client_id and tallyfy.client_secret"
        ),
        (_, "invalid_grant", Grant::Password) => format!(
            "the token endpoint refused the user's credentials ({http}): check tallyfy.username and tallyfy.password"
        ),
        (_, "invalid_grant", Grant::Refresh(_)) => {
            format!("the token endpoint refused the refresh token ({http})")
        }
        (429, _, _) => format!(
            "the token endpoint rate limited the bridge ({http}): delivery resumes once a renewal succeeds"
        ),
        (500..=599, _, _) => format!(
            "the token endpoint failed ({http}): delivery resumes once a renewal succeeds; check tallyfy.token_url if it lasts"
        ),
        (300..=399 | 404 | 405, _, _) => format!(
            "the token endpoint answered {http}: check tallyfy.token_url (e.g. https://go.tallyfy.com/oauth/token)"
        ),
        (_, _, grant) => format!(
            "the token endpoint refused the {} grant ({http}): check tallyfy.auth, tallyfy.client_id and tallyfy.token_url",
            grant.name()
        ),
    };
    Refused {
        status: Some(status.as_u16()),
        reason,
        grant_rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(status: u16, body: &str, grant: Grant<'_>) -> Refused {
        refused(
            StatusCode::from_u16(status).expect("status"),
            body.as_bytes(),
            grant,
        )
    }

    #[test]
    fn a_refusal_says_which_settings_to_check() {
        let client = sorted(
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed","message":"Client authentication failed"}"#,
            Grant::ClientCredentials,
        );
        assert_eq!(
            client.reason,
            "the token endpoint refused the client credentials (HTTP 401 invalid_client): check tallyfy.client_id and tallyfy.client_secret"
        );
        let user = sorted(400, r#"{"error":"invalid_grant"}"#, Grant::Password);
        assert!(
            user.reason
                .contains("tallyfy.username and tallyfy.password"),
            "{user:?}"
        );
        assert!(user.grant_rejected);
        let refresh = SecretString::from("r");
        assert!(
            sorted(
                400,
                r#"{"error":"invalid_grant"}"#,
                Grant::Refresh(&refresh)
            )
            .grant_rejected
        );
        assert!(
            sorted(404, "", Grant::Password)
                .reason
                .contains("tallyfy.token_url")
        );
        assert!(sorted(503, "", Grant::Password).reason.contains("HTTP 503"));
    }

    #[test]
    fn free_text_of_the_answer_is_never_repeated() {
        let echo = r#"{"error":"Invalid secret s3cret-value","message":"s3cret-value"}"#;
        let refusal = sorted(400, echo, Grant::ClientCredentials);
        assert!(!refusal.reason.contains("s3cret"), "{refusal:?}");
        assert!(refusal.reason.contains("(HTTP 400)"), "{refusal:?}");
    }

    #[test]
    fn an_answer_is_read_with_its_lifetime_as_number_or_text() {
        let issued = issued(br#"{"token_type":"Bearer","expires_in":"3600","access_token":"a","refresh_token":"r"}"#)
            .expect("issued");
        assert_eq!(issued.access.expose_secret(), "a");
        assert_eq!(issued.expires_in, Some(Duration::from_secs(3600)));
        assert!(issued.refresh.is_some());
        let bare = issued_or_none(br#"{"access_token":"a","expires_in":604800}"#);
        assert_eq!(bare, Some((Some(Duration::from_secs(604_800)), false)));
        assert_eq!(issued_or_none(br#"{"access_token":""}"#), None);
        assert_eq!(issued_or_none(b"<html>"), None);
    }

    fn issued_or_none(body: &[u8]) -> Option<(Option<Duration>, bool)> {
        issued(body).map(|i| (i.expires_in, i.refresh.is_some()))
    }

    #[test]
    fn the_config_prints_no_secret() {
        let config = OAuthConfig {
            token_url: "https://x/oauth/token".into(),
            client_id: "7".into(),
            client_secret: SecretString::from("client-secret-value"),
            user: Some(("u@example.com".into(), SecretString::from("pass-value"))),
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("client-secret-value") && !printed.contains("pass-value"));
    }
}
