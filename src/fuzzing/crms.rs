//! The CRM adapters (Pipedrive, HubSpot, Salesforce and its SOAP parser): one verdict per
//! request, every stored event keyed by the identity its payload agrees with.

use actix_web::HttpRequest;
use actix_web::body::MessageBody;
use actix_web::http::header::AUTHORIZATION;
use base64::Engine;

use super::{Message, assert_guest, assert_tidy, secret};
use crate::configuration::{
    HubSpotSettings, PipedriveSettings, SalesforceSettings, Settings, SourcesSettings,
};
use crate::domain::event::StoredEvent;
use crate::ingest::sources::{self, Adapter, Item, salesforce_xml};

/// `[sources]` as `config/default.toml` sets it, read once.
fn default_sources() -> &'static SourcesSettings {
    static SOURCES: std::sync::LazyLock<SourcesSettings> = std::sync::LazyLock::new(|| {
        Settings::defaults()
            .expect("config/default.toml loads")
            .sources
    });
    &SOURCES
}

/// Pipedrive's webhook password: an invented secret, so at least 16 characters.
const PIPEDRIVE_PASSWORD: &str = "pipedrive-s3cret-42";
/// `crm:pipedrive-s3cret-42`, the Pipedrive credentials configured below.
const PIPEDRIVE_BASIC: &str = "Basic Y3JtOnBpcGVkcml2ZS1zM2NyZXQtNDI=";
/// Salesforce's endpoint token (checked before `receive`, in `post_source`).
const SALESFORCE_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const HUBSPOT_SECRET: &str = "hubspot-client-secret";
const HUBSPOT_URL: &str = "https://bridge.example.com/webhooks/hubspot?tag=a%3Ab";
const SALESFORCE_ORG: &str = "00D5e000000AbCd";

/// The Pipedrive adapter: switches `valid-auth` (the configured Basic credentials) and
/// `reads-orgs` (an API token is configured). One item per request, each well formed.
pub fn pipedrive(data: &[u8]) {
    let message = Message::read(data);
    let settings = PipedriveSettings {
        username: Some("crm".into()),
        password: Some(secret(PIPEDRIVE_PASSWORD)),
        api_token: message.has("reads-orgs").then(|| secret("pipedrive-token")),
        ..default_sources().pipedrive.clone()
    };
    let adapter = sources::pipedrive::Pipedrive::from_settings(&settings).expect("configured");
    let mut request = message.request();
    if message.has("valid-auth") {
        request = request.insert_header((AUTHORIZATION, PIPEDRIVE_BASIC));
    }
    let request = request.to_http_request();
    if let Ok(items) = receive_twice(&adapter, &request, message.body) {
        assert_eq!(items.len(), 1);
        assert_items(&items, sources::pipedrive::SOURCE);
    }
}

/// The HubSpot adapter: switch `sign` signs the request (v3, timestamped now), which must then
/// pass; every element of a JSON array body becomes one item.
pub fn hubspot(data: &[u8]) {
    let message = Message::read(data);
    let settings = HubSpotSettings {
        client_secret: Some(secret(HUBSPOT_SECRET)),
        webhook_url: Some(HUBSPOT_URL.into()),
        ..default_sources().hubspot.clone()
    };
    let adapter = sources::hubspot::HubSpot::from_settings(&settings).expect("configured");
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
    assert_items(&items, sources::hubspot::SOURCE);
}

/// The Salesforce adapter and its SOAP parser (org `00D5e000000AbCd`): a parsed message holds
/// 1..=100 notifications of trimmed values, and every SOAP reply is well-formed XML.
pub fn salesforce(data: &[u8]) {
    let message = Message::read(data);
    let settings = SalesforceSettings {
        organization_id: Some(SALESFORCE_ORG.into()),
        endpoint_token: Some(secret(SALESFORCE_TOKEN)),
        company_field: Some("Account_Name__c".into()),
        ..default_sources().salesforce.clone()
    };
    let adapter = sources::salesforce::Salesforce::from_settings(&settings).expect("configured");
    let request = message.request().to_http_request();
    let received = adapter.receive(&request, message.body);
    assert_eq!(
        format!("{received:?}"),
        format!("{:?}", adapter.receive(&request, message.body))
    );
    match received {
        Ok(items) => assert_items(&items, sources::salesforce::SOURCE),
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
                let stored = StoredEvent::decode(&event.payload).expect("a stored event");
                match (stored, &event.email, &event.crm_record) {
                    (
                        StoredEvent::HubspotContact {
                            portal_id,
                            contact_id,
                        },
                        None,
                        Some(record),
                    ) => {
                        assert_eq!(*record, format!("hubspot:{portal_id}:{contact_id}"));
                        // A creation, or an email added later (keyed by when it happened).
                        let event_id = event.event_id.as_deref().unwrap_or_default();
                        let of_contact = event_id
                            .strip_prefix(&format!("{portal_id}:{contact_id}:"))
                            .unwrap_or_default();
                        let at = of_contact.strip_prefix("email:").unwrap_or_default();
                        assert!(
                            of_contact == "created"
                                || (!at.is_empty() && at.bytes().all(|b| b.is_ascii_digit())),
                            "{event_id}"
                        );
                    }
                    (
                        StoredEvent::PipedrivePerson { guest, .. } | StoredEvent::Guest { guest },
                        Some(email),
                        None,
                    ) => assert_guest(&guest, email),
                    other => panic!("a row keyed unlike its event: {other:?}"),
                }
            }
            Item::Rejected { field, .. } => assert!(!field.is_empty()),
            Item::Ignored { .. } => {}
        }
    }
}
