//! HubSpot's request signature v3: an HMAC over the method, the URI as HubSpot signed it, the
//! body and a timestamp no more than five minutes off.

use actix_web::HttpRequest;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::configuration::HubSpotSettings;
use crate::http_auth::secrets_match;

const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// HubSpot: reject requests whose timestamp is more than 5 minutes off.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

pub(super) struct Signature {
    client_secret: SecretString,
    /// The signed URI: the target URL as configured in HubSpot, and its form with the escapes
    /// HubSpot's docs decode (its SDK does not decode them; either is accepted).
    uris: Vec<String>,
}

impl Signature {
    pub(super) fn from_settings(settings: &HubSpotSettings) -> Option<Self> {
        let url = settings.webhook_url.as_deref()?.trim().to_owned();
        let mut uris = vec![decode_reserved(&url)];
        if uris[0] != url {
            uris.push(url);
        }
        Some(Self {
            client_secret: settings.client_secret.as_ref()?.to_secret_string(),
            uris,
        })
    }

    /// Signature v3: base64(HMAC-SHA256(secret, method + URI + body + timestamp)), with the
    /// timestamp (ms) within 5 minutes of now.
    pub(super) fn verify(
        &self,
        request: &HttpRequest,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(), &'static str> {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let signature = header(SIGNATURE_HEADER).ok_or("no X-HubSpot-Signature-v3 header")?;
        let timestamp = header(TIMESTAMP_HEADER).ok_or("no X-HubSpot-Request-Timestamp header")?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| "X-HubSpot-Request-Timestamp is not a number")?;
        // `abs_diff`: a timestamp at i64::MIN must not overflow (found by fuzzing).
        if now_ms.abs_diff(at) > MAX_SKEW_MS.unsigned_abs() {
            return Err("the request timestamp is more than 5 minutes off");
        }
        let secret = self.client_secret.expose_secret().trim().as_bytes();
        let matches = self.uris.iter().any(|uri| {
            let mut mac = hmac_sha256::HMAC::new(secret);
            for part in [
                request.method().as_str().as_bytes(),
                uri.as_bytes(),
                body,
                timestamp.as_bytes(),
            ] {
                mac.update(part);
            }
            let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize());
            secrets_match(signature.as_bytes(), expected.as_bytes())
        });
        if matches {
            Ok(())
        } else {
            Err("the v3 signature does not match")
        }
    }
}

/// Decodes only the escapes HubSpot's v3 docs list (`%3A` → `:` and so on), either case.
fn decode_reserved(uri: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3);
        match DECODED
            .iter()
            .find(|(hex, _)| escape.is_some_and(|e| e.eq_ignore_ascii_case(hex)))
        {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const SECRET: &str = "hubspot-client-secret";
    const URL: &str = "https://bridge.example.com/webhooks/hubspot?tag=a%3Ab";
    const BODY: &[u8] =
        br#"[{"objectId":5012,"portalId":62515,"subscriptionType":"contact.creation"}]"#;
    const NOW: i64 = 1_767_225_600_000;

    fn adapter() -> Signature {
        Signature {
            client_secret: SECRET.into(),
            uris: vec![decode_reserved(URL), URL.into()],
        }
    }

    fn sign(uri: &str, body: &[u8], timestamp: i64) -> String {
        let mut message = format!("POST{uri}").into_bytes();
        message.extend_from_slice(body);
        message.extend_from_slice(timestamp.to_string().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256::HMAC::mac(message, SECRET))
    }

    fn request(signature: &str, timestamp: i64) -> HttpRequest {
        TestRequest::post()
            .insert_header((SIGNATURE_HEADER, signature))
            .insert_header((TIMESTAMP_HEADER, timestamp.to_string()))
            .to_http_request()
    }

    #[test]
    fn a_v3_signature_over_either_uri_form_passes_within_five_minutes() {
        let hubspot = adapter();
        for uri in [URL, "https://bridge.example.com/webhooks/hubspot?tag=a:b"] {
            let good = sign(uri, BODY, NOW);
            assert_eq!(hubspot.verify(&request(&good, NOW), BODY, NOW), Ok(()));
            assert_eq!(
                hubspot.verify(&request(&good, NOW), BODY, NOW + MAX_SKEW_MS),
                Ok(())
            );
        }
    }

    #[test]
    fn forged_stale_and_missing_signatures_fail() {
        let hubspot = adapter();
        let good = sign(URL, BODY, NOW);
        assert!(hubspot.verify(&request(&good, NOW), b"[]", NOW).is_err());
        assert!(hubspot.verify(&request(&good, NOW + 1), BODY, NOW).is_err());
        let stale = sign(URL, BODY, NOW - MAX_SKEW_MS - 1);
        assert!(
            hubspot
                .verify(&request(&stale, NOW - MAX_SKEW_MS - 1), BODY, NOW)
                .is_err()
        );
        let other_url = sign("https://elsewhere.example.com/webhooks/hubspot", BODY, NOW);
        assert!(
            hubspot
                .verify(&request(&other_url, NOW), BODY, NOW)
                .is_err()
        );
        let unsigned = TestRequest::post().to_http_request();
        assert!(hubspot.verify(&unsigned, BODY, NOW).is_err());
        // The most distant timestamps are stale, not an overflow.
        for at in [i64::MIN, i64::MAX] {
            let far = sign(URL, BODY, at);
            assert!(hubspot.verify(&request(&far, at), BODY, NOW).is_err());
        }
    }

    #[test]
    fn only_the_listed_escapes_are_decoded() {
        assert_eq!(
            decode_reserved("https://x.io/a%2fb%3A%20c%"),
            "https://x.io/a/b:%20c%"
        );
    }
}
