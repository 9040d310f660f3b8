//! Proves a webhook comes from the CRM: Standard Webhooks signatures (verified by the
//! specification's reference crate) or a shared secret, compared in constant time.

use actix_web::http::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use standardwebhooks::{HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};

use crate::configuration::{AuthMode, InboundAuthSettings, InventedSecret, Secret};
use crate::http_auth::{basic_credentials, bearer, secrets_match};

pub enum InboundAuth {
    Signature(standardwebhooks::Webhook),
    SharedSecret(SecretString),
    /// Explicitly configured; start-up warns about it.
    None,
    /// The canonical endpoint is off (`mode = "disabled"`).
    Disabled,
}

/// Why a request was refused: logged for operators, never sent to the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("signature check failed: {0}")]
    Signature(#[from] standardwebhooks::WebhookError),
    #[error("no usable Authorization header")]
    MissingCredentials,
    #[error("the shared secret does not match")]
    WrongSecret,
    #[error("ingest.auth.mode is \"disabled\"")]
    Disabled,
}

impl InboundAuth {
    pub fn from_settings(settings: &InboundAuthSettings) -> anyhow::Result<Self> {
        let required = |secret: Option<SecretString>, key: &str| {
            secret.ok_or_else(|| anyhow::anyhow!("invalid configuration: `{key}` is required"))
        };
        Ok(match settings.mode {
            AuthMode::Signature => {
                let secret = required(
                    settings
                        .signing_secret
                        .as_ref()
                        .map(Secret::to_secret_string),
                    "ingest.auth.signing_secret",
                )?;
                let webhook = standardwebhooks::Webhook::new(secret.expose_secret().trim())
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "invalid configuration: `ingest.auth.signing_secret` must be whsec_ followed by base64"
                        )
                    })?;
                Self::Signature(webhook)
            }
            AuthMode::SharedSecret => Self::SharedSecret(required(
                settings
                    .shared_secret
                    .as_ref()
                    .map(InventedSecret::to_secret_string),
                "ingest.auth.shared_secret",
            )?),
            AuthMode::None => Self::None,
            AuthMode::Disabled => Self::Disabled,
        })
    }

    /// Checks the request's credentials against the raw body bytes, exactly as received.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthFailure> {
        match self {
            Self::Signature(webhook) => {
                let headers = signature_headers(headers);
                refuse_pre_epoch_timestamp(&headers)?;
                Ok(webhook.verify(body, &headers)?)
            }
            Self::SharedSecret(secret) => {
                let presented = presented_secret(headers).ok_or(AuthFailure::MissingCredentials)?;
                if secrets_match(&presented, secret.expose_secret().trim().as_bytes()) {
                    Ok(())
                } else {
                    Err(AuthFailure::WrongSecret)
                }
            }
            Self::None => Ok(()),
            Self::Disabled => Err(AuthFailure::Disabled),
        }
    }
}

/// The three Standard Webhooks headers, moved into the `http` 1.x map the verifier takes.
fn signature_headers(headers: &HeaderMap) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for name in [
        HEADER_WEBHOOK_ID,
        HEADER_WEBHOOK_TIMESTAMP,
        HEADER_WEBHOOK_SIGNATURE,
    ] {
        if let Some(value) = headers
            .get(name)
            .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            map.insert(name, value);
        }
    }
    map
}

/// A timestamp before 1970 is too old, as the reference crate would also say; refusing it here
/// keeps the crate's unchecked `now - timestamp` from overflowing (a panic in debug builds).
fn refuse_pre_epoch_timestamp(headers: &http::HeaderMap) -> Result<(), AuthFailure> {
    let timestamp = headers
        .get(HEADER_WEBHOOK_TIMESTAMP)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    match timestamp {
        Some(ts) if ts < 0 => Err(standardwebhooks::WebhookError::TimestampTooOldError.into()),
        _ => Ok(()),
    }
}

/// `Bearer <secret>`, or `Basic base64(user:secret)` (the user name is ignored).
fn presented_secret(headers: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(token) = bearer(headers) {
        return Some(token.as_bytes().to_vec());
    }
    let decoded = basic_credentials(headers)?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{AUTHORIZATION, HeaderValue};
    use base64::Engine;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"email":"a@example.com"}"#;

    fn signature_auth() -> InboundAuth {
        InboundAuth::Signature(standardwebhooks::Webhook::new(SECRET).expect("secret"))
    }

    fn signed_headers(timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                HeaderValue::from_str(&value).expect("header"),
            );
        };
        set("webhook-id", "msg_1".into());
        set("webhook-timestamp", timestamp.to_string());
        set("webhook-signature", signature.into());
        headers
    }

    fn sign(id: &str, timestamp: i64, body: &[u8], secret: &str) -> String {
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .sign(id, timestamp, body)
            .expect("sign")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_valid_signature_passes_and_any_change_fails() {
        let auth = signature_auth();
        let ts = now();
        let good = sign("msg_1", ts, BODY, SECRET);
        assert!(auth.verify(&signed_headers(ts, &good), BODY).is_ok());
        assert!(
            auth.verify(&signed_headers(ts, &good), br#"{"email":"b@example.com"}"#)
                .is_err()
        );
        assert!(auth.verify(&signed_headers(ts + 1, &good), BODY).is_err());
    }

    #[test]
    fn one_matching_signature_among_several_passes_for_key_rotation() {
        let ts = now();
        let old = sign("msg_1", ts, BODY, "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xk");
        let new = sign("msg_1", ts, BODY, SECRET);
        let header = format!("{old} {new}");
        assert!(
            signature_auth()
                .verify(&signed_headers(ts, &header), BODY)
                .is_ok()
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        let auth = signature_auth();
        for ts in [now() - 301, now() + 301] {
            let sig = sign("msg_1", ts, BODY, SECRET);
            assert!(
                auth.verify(&signed_headers(ts, &sig), BODY).is_err(),
                "{ts}"
            );
        }
    }

    #[test]
    fn a_timestamp_before_the_epoch_is_too_old_even_at_the_i64_minimum() {
        // Found by fuzzing: the reference crate computed `now - i64::MIN` and overflowed.
        let auth = signature_auth();
        for ts in [i64::MIN, i64::MIN + 1, -1] {
            let sig = sign("msg_1", 0, BODY, SECRET);
            assert!(
                matches!(
                    auth.verify(&signed_headers(ts, &sig), BODY),
                    Err(AuthFailure::Signature(
                        standardwebhooks::WebhookError::TimestampTooOldError
                    ))
                ),
                "{ts}"
            );
        }
    }

    #[test]
    fn shared_secret_accepts_bearer_and_basic() {
        let auth = InboundAuth::SharedSecret(SecretString::from("s3cret"));
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
            auth.verify(&headers, BODY)
        };
        assert!(with("Bearer s3cret").is_ok());
        assert!(with("bearer s3cret").is_ok());
        let basic = base64::engine::general_purpose::STANDARD.encode("crm:s3cret");
        assert!(with(&format!("Basic {basic}")).is_ok());
        assert!(with("Bearer s3cre").is_err());
        assert!(with("Bearer s3crett").is_err());
        assert!(with("Token s3cret").is_err());
        assert!(auth.verify(&HeaderMap::new(), BODY).is_err());
    }
}
