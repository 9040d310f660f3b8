//! HubSpot app webhooks: a signed (v3) JSON array of events; each `contact.creation` is stored
//! as a reference to the contact, whose fields the delivery worker fetches before creating it.

use actix_web::HttpRequest;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{Adapter, IngestError, Item, RecordIds, json_body, refused};
use crate::configuration::HubSpotSettings;
use crate::crm::{ContactRef, Pending};
use crate::http_auth::secrets_match;

pub const SOURCE: &str = "hubspot";

const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// HubSpot: reject requests whose timestamp is more than 5 minutes off.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// HubSpot sends at most 100 events per request.
const MAX_EVENTS: usize = 100;

pub struct HubSpot {
    client_secret: SecretString,
    /// The signed URI: the target URL as configured in HubSpot, and its form with the escapes
    /// HubSpot's docs decode (its SDK does not decode them; either is accepted).
    uris: Vec<String>,
}

impl HubSpot {
    pub fn from_settings(settings: &HubSpotSettings) -> Option<Self> {
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
    fn verify(&self, request: &HttpRequest, body: &[u8], now_ms: i64) -> Result<(), &'static str> {
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

impl Adapter for HubSpot {
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError> {
        self.verify(request, body, crate::time::now_ms())
            .map_err(|reason| refused(SOURCE, reason))?;
        let Value::Array(events) = json_body(request, body)? else {
            return Err(IngestError::MalformedJson {
                message: "body must be a JSON array of HubSpot events".into(),
            });
        };
        if events.len() > MAX_EVENTS {
            return Err(IngestError::invalid(
                "events",
                "too_many",
                &format!(
                    "{} events in one request; HubSpot sends at most {MAX_EVENTS}",
                    events.len()
                ),
            ));
        }
        Ok(events.iter().enumerate().map(|(i, e)| item(i, e)).collect())
    }
}

fn item(index: usize, event: &Value) -> Item {
    let kind = event
        .get("subscriptionType")
        .or_else(|| event.get("eventType"))
        .and_then(Value::as_str)
        .unwrap_or("an event without subscriptionType");
    if kind != "contact.creation" {
        return Item::Ignored {
            reason: format!("{kind} is not a contact creation"),
        };
    }
    let id = |key: &str| match event.get(key) {
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    };
    let contact = match (id("portalId"), id("objectId")) {
        (Some(portal_id), Some(contact_id)) => ContactRef {
            portal_id,
            contact_id,
        },
        (portal, contact_id) => {
            let field = if portal.is_none() {
                "portalId"
            } else {
                "objectId"
            };
            return Item::rejected(
                &format!("[{index}].{field}"),
                "missing_field",
                &format!("{field} must be a numeric id"),
                RecordIds::new(contact_id.as_deref(), None),
            );
        }
    };
    // eventId is documented as not unique; a contact is created once.
    let event_id = format!("{}:{}:created", contact.portal_id, contact.contact_id);
    let key = contact.key();
    let pending = Pending::HubSpotContact {
        hubspot_contact: contact,
    };
    Item::event(SOURCE, event_id, key, &pending, Vec::new())
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
    use serde_json::json;

    const SECRET: &str = "hubspot-client-secret";
    const URL: &str = "https://bridge.example.com/webhooks/hubspot?tag=a%3Ab";
    const BODY: &[u8] =
        br#"[{"objectId":5012,"portalId":62515,"subscriptionType":"contact.creation"}]"#;
    const NOW: i64 = 1_767_225_600_000;

    fn adapter() -> HubSpot {
        HubSpot {
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

    #[test]
    fn each_event_is_stored_ignored_or_rejected_on_its_own() {
        let stored = item(
            0,
            &json!({"objectId": 5012, "portalId": 62515, "subscriptionType": "contact.creation"}),
        );
        let Item::Event { event, .. } = stored else {
            panic!("an event: {stored:?}")
        };
        assert_eq!(event.email, "hubspot:62515:5012");
        assert_eq!(event.event_id.as_deref(), Some("62515:5012:created"));
        assert!(matches!(
            item(
                1,
                &json!({"objectId": 1, "portalId": 2, "subscriptionType": "contact.propertyChange"})
            ),
            Item::Ignored { .. }
        ));
        assert!(matches!(
            item(2, &json!({"portalId": 2, "subscriptionType": "contact.creation"})),
            Item::Rejected { field, .. } if field == "[2].objectId"
        ));
        assert!(matches!(
            item(3, &json!({"objectId": "5013", "subscriptionType": "contact.creation"})),
            Item::Rejected { field, record, .. }
                if field == "[3].portalId" && record.record_id.as_deref() == Some("5013")
        ));
    }
}
