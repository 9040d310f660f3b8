//! Entry points for the fuzz targets in `fuzz/` (built only with cargo-fuzz's `--cfg fuzzing`):
//! each feeds one hostile input to the real parser and checks what must hold beyond "no panic".
//!
//! Inputs that carry headers are read as a tiny HTTP message, so seeds stay readable fixtures:
//! a first line of switches, `name: value` lines, a blank line, then the body (docs/fuzzing.md).

use std::time::{Duration, SystemTime};

use actix_web::HttpRequest;
use actix_web::body::MessageBody;
use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine;
use secrecy::SecretString;

use crate::configuration::{HubSpotSettings, PipedriveSettings, SalesforceSettings, Secret};
use crate::crm::Pending;
use crate::domain::{Guest, NAME_MAX, NormalisedEmail, PHONE_MAX, lookup_key};
use crate::http_auth::basic_credentials;
use crate::ingest::auth::InboundAuth;
use crate::ingest::contact;
use crate::ingest::sources::{Adapter, Item, hubspot, pipedrive, salesforce, salesforce_xml};
use crate::tallyfy::types::GuestId;
use crate::tallyfy::{CallError, error};
use crate::upstream::{self, parse_retry_after};

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SHARED_SECRET: &str = "s3cret";
/// Pipedrive's webhook password: an invented secret, so at least 16 characters.
const PIPEDRIVE_PASSWORD: &str = "pipedrive-s3cret-42";
/// `crm:pipedrive-s3cret-42`, the Pipedrive credentials configured below.
const PIPEDRIVE_BASIC: &str = "Basic Y3JtOnBpcGVkcml2ZS1zM2NyZXQtNDI=";
/// Salesforce's endpoint token (checked before `receive`, in `post_source`).
const SALESFORCE_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const HUBSPOT_SECRET: &str = "hubspot-client-secret";
const HUBSPOT_URL: &str = "https://bridge.example.com/webhooks/hubspot?tag=a%3Ab";
const SALESFORCE_ORG: &str = "00D5e000000AbCd";
/// Never in an answer once scrubbed; long enough not to hide inside `[REDACTED]`.
const TALLYFY_TOKEN: &str = "tok_VERY_SECRET_value_42";
/// Longest excerpt `upstream` keeps, plus its `…`.
const EXCERPT_MAX: usize = 201;

/// A secret setting, held to the rules of one loaded from the environment.
fn secret<const N: usize>(value: &str) -> Secret<N> {
    value.parse().expect("a valid secret")
}

/// A fuzz input read as `switches\nname: value\n…\n\nbody`.
struct Message<'a> {
    switches: Vec<String>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

impl<'a> Message<'a> {
    fn read(data: &'a [u8]) -> Self {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &data[data.len()..]),
        };
        let mut lines = head.split(|b| *b == b'\n');
        let switches = String::from_utf8_lossy(lines.next().unwrap_or_default())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let headers = lines
            .filter_map(|line| {
                let colon = line.iter().position(|b| *b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii_start()))
            })
            .collect();
        Self {
            switches,
            headers,
            body,
        }
    }

    fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The headers that are valid HTTP, in order (a repeated name is appended, not replaced).
    fn valid_headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.headers.iter().filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            ))
        })
    }

    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.valid_headers() {
            map.append(name, value);
        }
        map
    }

    fn request(&self) -> TestRequest {
        self.valid_headers()
            .fold(TestRequest::post(), |request, header| {
                request.append_header(header)
            })
    }
}

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

/// Trimmed, not empty, at most `max` characters.
fn assert_tidy(value: &str, max: usize) {
    assert!(!value.is_empty() && value.trim() == value, "{value:?}");
    assert!(value.chars().count() <= max, "{value:?} over {max}");
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

/// The Pipedrive adapter: switches `valid-auth` (the configured Basic credentials) and
/// `reads-orgs` (an API token is configured). One item per request, each well formed.
pub fn pipedrive(data: &[u8]) {
    let message = Message::read(data);
    let settings = PipedriveSettings {
        username: Some("crm".into()),
        password: Some(secret(PIPEDRIVE_PASSWORD)),
        api_token: message.has("reads-orgs").then(|| secret("pipedrive-token")),
        ..PipedriveSettings::default()
    };
    let adapter = pipedrive::Pipedrive::from_settings(&settings).expect("configured");
    let mut request = message.request();
    if message.has("valid-auth") {
        request = request.insert_header((AUTHORIZATION, PIPEDRIVE_BASIC));
    }
    let request = request.to_http_request();
    if let Ok(items) = receive_twice(&adapter, &request, message.body) {
        assert_eq!(items.len(), 1);
        assert_items(&items, pipedrive::SOURCE);
    }
}

/// The HubSpot adapter: switch `sign` signs the request (v3, timestamped now), which must then
/// pass; every element of a JSON array body becomes one item.
pub fn hubspot(data: &[u8]) {
    let message = Message::read(data);
    let settings = HubSpotSettings {
        client_secret: Some(secret(HUBSPOT_SECRET)),
        webhook_url: Some(HUBSPOT_URL.into()),
        ..HubSpotSettings::default()
    };
    let adapter = hubspot::HubSpot::from_settings(&settings).expect("configured");
    let mut request = message.request();
    let signed = message.has("sign");
    if signed {
        let now = chrono::Utc::now().timestamp_millis().to_string();
        let mut mac = hmac_sha256::HMAC::new(HUBSPOT_SECRET);
        // The form with HubSpot's listed escapes decoded, as the adapter tries first.
        let uri = HUBSPOT_URL.replace("%3A", ":");
        for part in [
            b"POST".as_slice(),
            uri.as_bytes(),
            message.body,
            now.as_bytes(),
        ] {
            mac.update(part);
        }
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize());
        request = request
            .insert_header(("x-hubspot-signature-v3", signature))
            .insert_header(("x-hubspot-request-timestamp", now));
    }
    let request = request.to_http_request();
    let received = receive_twice(&adapter, &request, message.body);
    if signed {
        assert!(
            !matches!(received, Err(crate::ingest::IngestError::Unauthorized)),
            "a fresh v3 signature was refused"
        );
    }
    let Ok(items) = received else { return };
    let events: Vec<serde_json::Value> =
        serde_json::from_slice(message.body).expect("an accepted body is a JSON array");
    assert_eq!(items.len(), events.len());
    assert_items(&items, hubspot::SOURCE);
}

/// The Salesforce adapter and its SOAP parser (org `00D5e000000AbCd`): a parsed message holds
/// 1..=100 notifications of trimmed values, and every SOAP reply is well-formed XML.
pub fn salesforce(data: &[u8]) {
    let message = Message::read(data);
    let settings = SalesforceSettings {
        organization_id: Some(SALESFORCE_ORG.into()),
        endpoint_token: Some(secret(SALESFORCE_TOKEN)),
        company_field: Some("Account_Name__c".into()),
        ..SalesforceSettings::default()
    };
    let adapter = salesforce::Salesforce::from_settings(&settings).expect("configured");
    let request = message.request().to_http_request();
    let received = adapter.receive(&request, message.body);
    assert_eq!(
        format!("{received:?}"),
        format!("{:?}", adapter.receive(&request, message.body))
    );
    match received {
        Ok(items) => assert_items(&items, salesforce::SOURCE),
        Err(error) => assert_well_formed(adapter.reply(Err(error))),
    }

    if let Ok(parsed) = salesforce_xml::parse(message.body) {
        let count = parsed.notifications.len();
        assert!((1..=salesforce_xml::MAX_NOTIFICATIONS).contains(&count));
        assert_tidy(&parsed.organization_id, usize::MAX);
        for notification in &parsed.notifications {
            let texts = notification.id.iter().chain(&notification.object_type);
            for text in texts.chain(notification.fields.values()) {
                assert_tidy(text, usize::MAX);
            }
        }
    }
    let text = String::from_utf8_lossy(message.body);
    let fault = salesforce_xml::fault(message.has("server"), &text);
    roxmltree::Document::parse(&fault).expect("a fault is well-formed XML");
}

fn assert_well_formed(response: actix_web::HttpResponse) {
    let Ok(body) = response.into_body().try_into_bytes() else {
        panic!("a SOAP reply has a complete body")
    };
    let text = std::str::from_utf8(&body).expect("a SOAP reply is UTF-8");
    roxmltree::Document::parse(text).expect("a SOAP reply is well-formed XML");
}

/// Receives twice: an adapter's verdict depends on the request alone. Errors also go through
/// the adapter's reply.
fn receive_twice(
    adapter: &dyn Adapter,
    request: &HttpRequest,
    body: &[u8],
) -> Result<Vec<Item>, crate::ingest::IngestError> {
    let first = adapter.receive(request, body);
    let second = adapter.receive(request, body);
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
    if let Err(error) = second {
        let _ = adapter.reply(Err(error));
    }
    first
}

/// Each stored event is keyed by a normalised email (or a CRM reference) its payload agrees
/// with; each rejection names a field.
fn assert_items(items: &[Item], source: &str) {
    for item in items {
        match item {
            Item::Event { event, .. } => {
                assert_eq!(event.source, source);
                assert!(event.event_id.as_deref().is_some_and(|id| !id.is_empty()));
                if let Ok(pending) = serde_json::from_str::<Pending>(&event.payload) {
                    match pending {
                        Pending::HubSpotContact { hubspot_contact } => {
                            assert_eq!(hubspot_contact.key(), event.email);
                            assert_eq!(
                                event.event_id.as_deref(),
                                Some(format!("{}:created", &event.email["hubspot:".len()..]))
                                    .as_deref()
                            );
                        }
                        Pending::PipedriveOrg { guest, .. } => assert_guest(&guest, &event.email),
                    }
                } else {
                    let guest: Guest =
                        serde_json::from_str(&event.payload).expect("a stored guest");
                    assert_guest(&guest, &event.email);
                }
            }
            Item::Rejected { field, .. } => assert!(!field.is_empty()),
            Item::Ignored { .. } => {}
        }
    }
}

/// A guest keyed by `key`: the key is its email's identity and an identity itself, and every
/// field is trimmed and within Tallyfy's limits.
fn assert_guest(guest: &Guest, key: &str) {
    assert_eq!(lookup_key(&guest.email), key);
    assert_eq!(lookup_key(key), key);
    assert!(
        NormalisedEmail::parse(&guest.email).is_ok(),
        "{:?}",
        guest.email
    );
    assert_eq!(
        NormalisedEmail::parse(key)
            .as_ref()
            .map(NormalisedEmail::as_str),
        Ok(key),
        "the key {key:?} fails the email rule"
    );
    assert_tidy(&guest.email, usize::MAX);
    for (value, max) in [
        (&guest.first_name, NAME_MAX),
        (&guest.last_name, NAME_MAX),
        (&guest.company_name, NAME_MAX),
        (&guest.opportunity_name, NAME_MAX),
        (&guest.phone_1, PHONE_MAX),
        (&guest.phone_2, PHONE_MAX),
    ] {
        if let Some(value) = value {
            assert_tidy(value, max);
        }
    }
}

/// Tallyfy's answers: the first word is the status. The class follows the status, text kept
/// from the body is one short line without the token, and a guest id is never blank.
pub fn tallyfy_response(data: &[u8]) {
    let message = Message::read(data);
    if let Some(id) = GuestId::from_body(message.body) {
        assert_tidy(id.as_str(), usize::MAX);
        assert_eq!(GuestId::from_body(message.body), Some(id));
    }
    let _ = upstream::excerpt(message.body);
    let Some(status) = message
        .switches
        .first()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|code| reqwest::StatusCode::from_u16(code).ok())
    else {
        return;
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &message.headers {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let code = status.as_u16();
    let classified = match upstream::classify(status, &headers, message.body, None) {
        Ok(()) => {
            assert!(status.is_success(), "{code} taken for a success");
            return;
        }
        Err(failure) => error::from_failure(failure, message.body),
    };
    assert_eq!(classified.status(), Some(code));
    let class_of_status = match code {
        429 => "rate_limited",
        401 | 403 => "unauthorized",
        422 => "unprocessable",
        408 | 500..=599 => "transient",
        _ => "permanent",
    };
    let class = match &classified {
        CallError::RateLimited { .. } => "rate_limited",
        CallError::Unauthorized { .. } => "unauthorized",
        CallError::Unprocessable { .. } => "unprocessable",
        CallError::Transient { .. } => "transient",
        CallError::Permanent { .. } => "permanent",
    };
    assert_eq!(class, class_of_status);
    match &classified {
        CallError::Unprocessable { message: text }
        | CallError::Transient { detail: text, .. }
        | CallError::Permanent { excerpt: text, .. } => {
            assert!(!text.contains(['\n', '\r']), "{text:?}");
            assert!(text.chars().count() <= EXCERPT_MAX, "{text:?}");
        }
        CallError::RateLimited { .. } | CallError::Unauthorized { .. } => {}
    }
    let scrubbed = classified.scrub(TALLYFY_TOKEN);
    assert!(!scrubbed.to_string().contains(TALLYFY_TOKEN));
    assert!(!format!("{scrubbed:?}").contains(TALLYFY_TOKEN));
}

/// `Retry-After`: delta-seconds are read exactly; a date gives the time from `now` to it, so
/// waits from two moments differ by the time between them (or are both zero past the date).
pub fn retry_after(data: &[u8]) {
    // The header's way in: any bytes, of which only visible ASCII reaches the parser.
    if let Ok(value) = reqwest::header::HeaderValue::from_bytes(data)
        && let Ok(text) = value.to_str()
    {
        let _ = parse_retry_after(text, SystemTime::now());
    }
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // The epoch, 2015-10-21 07:28:00 (the RFC's example), 9999-12-31 23:59:59.
    let moments = [0, 1_445_412_480, 253_402_300_799].map(at);
    let waits = moments.map(|now| parse_retry_after(value, now));
    assert_eq!(waits[1], parse_retry_after(value, moments[1]));
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let exact = trimmed.parse::<u64>().ok().map(Duration::from_secs);
        assert!(waits.iter().all(|wait| *wait == exact), "{value:?}");
        return;
    }
    let [Some(from_epoch), Some(from_2015), Some(from_9999)] = waits else {
        assert!(waits.iter().all(Option::is_none), "{value:?}: {waits:?}");
        return;
    };
    assert_eq!(from_9999, Duration::ZERO);
    if from_2015 > Duration::ZERO {
        assert_eq!(from_epoch - from_2015, Duration::from_secs(1_445_412_480));
    } else {
        assert!(from_epoch <= Duration::from_secs(1_445_412_480));
    }
}
