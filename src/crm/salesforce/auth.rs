//! The OAuth 2.0 client-credentials flow: the connected app's consumer key and secret posted to
//! `{instance_url}/services/oauth2/token` for an access token, which is held until refused.

use std::fmt;

use anyhow::Context;
use reqwest::Url;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::crm::FetchError;
use crate::upstream::{excerpt, one_line, truncate};

pub(super) struct ClientCredentials {
    /// `{instance_url}/services/oauth2/token`
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    /// The access token in use; `None` until the first call and after a refusal.
    held: tokio::sync::Mutex<Option<SecretString>>,
}

impl ClientCredentials {
    pub(super) fn new(
        instance: &Url,
        client_id: String,
        client_secret: SecretString,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            token_url: instance
                .join("/services/oauth2/token")
                .context("Failed to build Salesforce's token URL")?,
            client_id,
            client_secret,
            held: tokio::sync::Mutex::new(None),
        })
    }

    /// The token held, locked while a new one is fetched.
    pub(super) async fn held(&self) -> tokio::sync::MutexGuard<'_, Option<SecretString>> {
        self.held.lock().await
    }

    /// Drops the token after Salesforce refused it: the next call fetches another.
    pub(super) async fn forget(&self) {
        *self.held.lock().await = None;
    }

    /// `grant_type=client_credentials` with the key and secret, form-encoded (never in the URL,
    /// which errors may show).
    pub(super) fn request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        http.post(self.token_url.clone()).form(&form)
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// The `access_token` of the token endpoint's answer, or why there is none.
pub(super) fn read_token(
    status: reqwest::StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SecretString, FetchError> {
    if !status.is_success() {
        return Err(refused(status, headers, body));
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
        .filter(|token| !token.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| FetchError::Transient {
            status: Some(status.as_u16()),
            detail: "the token endpoint's answer has no access_token".into(),
        })
}

/// The token endpoint answers a refusal as `{"error", "error_description"}` (400
/// `invalid_client` for a wrong secret): named with the keys to fix, never their values.
fn refused(status: reqwest::StatusCode, headers: &HeaderMap, body: &[u8]) -> FetchError {
    let code = status.as_u16();
    if !matches!(code, 400 | 401 | 403) {
        return super::api::failure(status, headers, body);
    }
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
    let said = match (text("error"), text("error_description")) {
        ("", "") => excerpt(body),
        (error, "") => error.to_owned(),
        (error, description) => format!("{error}: {description}"),
    };
    FetchError::Permanent {
        status: code,
        detail: truncate(
            &one_line(&format!(
                "the token endpoint refused sources.salesforce.client_id and client_secret (client credentials flow): {said}"
            )),
            300,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_secret_names_the_keys_only_and_a_token_is_read() {
        let refused = read_token(
            reqwest::StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        )
        .expect_err("refused");
        let FetchError::Permanent { status, detail } = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(status, 400);
        assert!(detail.contains("sources.salesforce.client_id"), "{detail}");
        assert!(
            detail.ends_with("invalid_client: invalid client credentials"),
            "{detail}"
        );
        let token = read_token(
            reqwest::StatusCode::OK,
            &HeaderMap::new(),
            br#"{"access_token":"00D!AQ","token_type":"Bearer","instance_url":"https://x"}"#,
        )
        .expect("a token");
        assert_eq!(token.expose_secret(), "00D!AQ");
        assert!(read_token(reqwest::StatusCode::OK, &HeaderMap::new(), b"{}").is_err());
    }
}
