//! The bridge's own webhook format and its authentication: what a parsed contact and a verified
//! request must satisfy beyond "no panic".

use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::SecretString;

use super::{Message, assert_guest, assert_tidy};
use crate::domain::Guest;
use crate::http_auth::basic_credentials;
use crate::ingest::auth::InboundAuth;
use crate::ingest::contact;

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SHARED_SECRET: &str = "s3cret";

/// `POST /webhooks/contacts`: a contact that parses is trimmed, within Tallyfy's limits, keyed
/// by a lowercased email that still passes the email check, and stored losslessly.
pub fn canonical_contact(data: &[u8]) {
    let parsed = contact::parse(data);
    assert_eq!(format!("{parsed:?}"), format!("{:?}", contact::parse(data)));
    let Ok(contact) = parsed else { return };
    let guest = &contact.guest;
    assert_guest(guest, contact.normalised_email.as_str());
    if let Some(id) = &contact.event_id {
        assert_tidy(id, contact::EVENT_ID_MAX);
    }
    let stored = serde_json::to_string(guest).expect("a guest serialises");
    let back: Guest = serde_json::from_str(&stored).expect("a stored guest reads back");
    assert_eq!(&back, guest);
}

/// `ingest::auth`: switches pick the mode (`signature`, `shared-secret`, `none`, `disabled`);
/// `sign` makes the signature headers valid for now, which must then verify, and only for this
/// body. A shared secret passes only when the Authorization header really presents it.
pub fn standard_webhooks(data: &[u8]) {
    let message = Message::read(data);
    let mut headers = message.header_map();
    let _ = basic_credentials(&headers);
    let auth = if message.has("shared-secret") {
        InboundAuth::SharedSecret(SecretString::from(SHARED_SECRET))
    } else if message.has("none") {
        InboundAuth::None
    } else if message.has("disabled") {
        InboundAuth::Disabled
    } else {
        let webhook = standardwebhooks::Webhook::new(SIGNING_SECRET).expect("a valid secret");
        InboundAuth::Signature(webhook)
    };
    if let (InboundAuth::Signature(webhook), true) = (&auth, message.has("sign")) {
        let id = headers
            .get(standardwebhooks::HEADER_WEBHOOK_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("msg_fuzz")
            .to_owned();
        let now = chrono::Utc::now().timestamp();
        // Standard Webhooks signs text: a body that is not UTF-8 can never verify.
        let Ok(signature) = webhook.sign(&id, now, message.body) else {
            assert!(std::str::from_utf8(message.body).is_err());
            assert!(auth.verify(&headers, message.body).is_err());
            return;
        };
        for (name, value) in [
            (standardwebhooks::HEADER_WEBHOOK_ID, id),
            (standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, now.to_string()),
            (standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature),
        ] {
            let value = HeaderValue::from_str(&value).expect("a valid header value");
            headers.insert(HeaderName::from_static(name), value);
        }
        let verified = auth.verify(&headers, message.body);
        assert!(
            verified.is_ok(),
            "a fresh signature was refused: {verified:?}"
        );
        let mut other = message.body.to_vec();
        other.push(b'x');
        assert!(
            auth.verify(&headers, &other).is_err(),
            "another body passed"
        );
    }
    let verified = auth.verify(&headers, message.body);
    assert_eq!(
        verified.is_ok(),
        auth.verify(&headers, message.body).is_ok()
    );
    match auth {
        InboundAuth::None => assert!(verified.is_ok()),
        InboundAuth::Disabled => assert!(verified.is_err()),
        InboundAuth::SharedSecret(_) if verified.is_ok() => {
            let value = headers
                .get(AUTHORIZATION)
                .expect("credentials were presented");
            let bearer = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .is_some_and(|(_, secret)| secret.trim() == SHARED_SECRET);
            let basic = basic_credentials(&headers).is_some_and(|decoded| {
                decoded
                    .splitn(2, |b| *b == b':')
                    .nth(1)
                    .is_some_and(|password| password == SHARED_SECRET.as_bytes())
            });
            assert!(bearer || basic, "{value:?} passed as the shared secret");
        }
        _ => {}
    }
}
