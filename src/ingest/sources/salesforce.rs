//! Salesforce Outbound Messages (SOAP, up to 100 Contact notifications): the sender is checked
//! by the secret token its URL ends with (before the body is read, in `post_source`), then by
//! its organisation id, and the `<Ack>true</Ack>` goes out only once every one is committed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use secrecy::SecretString;

use super::salesforce_xml::{self, Notification, OutboundMessage, ParseError};
use super::{Adapter, IngestError, Item, RecordIds, Report, refused};
use crate::configuration::{OwnerMembers, SalesforceSettings};
use crate::crm::salesforce::{EMAIL, contact_draft};
use crate::ingest::media_type;

pub const SOURCE: &str = "salesforce";
/// Salesforce sends at most 100 notifications per message (the WSDL's maxOccurs); checked here
/// too, whatever the XML parser allows.
const MAX_NOTIFICATIONS: usize = 100;

pub struct Salesforce {
    /// The URL's last segment: the one secret Salesforce can present.
    endpoint_token: SecretString,
    /// 15 or 18 characters; a 15-character id matches the first 15 of the message's.
    organization_id: String,
    /// The Contact field holding the account name, if the admin added one to the message.
    company_field: Option<String>,
    /// 100 notifications may be megabytes; the XML's shape is bounded separately.
    max_body_bytes: usize,
    /// OwnerId → the Tallyfy member the guest is associated with.
    owner_members: OwnerMembers,
}

impl Salesforce {
    /// None until `organization_id` is set; validation makes `endpoint_token` come with it.
    pub fn from_settings(settings: &SalesforceSettings) -> Option<Self> {
        Some(Self {
            endpoint_token: settings.endpoint_token.as_ref()?.to_secret_string(),
            organization_id: settings.organization_id.as_deref()?.trim().to_owned(),
            company_field: settings
                .company_field
                .as_deref()
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
            max_body_bytes: settings.max_body_bytes,
            owner_members: settings.owner_members.clone(),
        })
    }

    /// The organisation check and the items, once the body is parsed.
    fn accept(
        &self,
        parsed: Result<OutboundMessage, ParseError>,
    ) -> Result<Vec<Item>, IngestError> {
        let message = parsed.map_err(|error| match error {
            ParseError::Malformed(_) => IngestError::MalformedXml {
                message: error.to_string(),
            },
            ParseError::Missing(what) => {
                IngestError::invalid(what, "missing_field", &error.to_string())
            }
            ParseError::TooMany(_) => {
                IngestError::invalid("Notification", "too_many", &error.to_string())
            }
            ParseError::TooComplex(_) => {
                IngestError::invalid("body", "too_complex", &error.to_string())
            }
        })?;
        // A misrouted org's messages (the token was copied to another org's outbound message).
        if !self.is_our_org(&message.organization_id) {
            let reason = "OrganizationId is not sources.salesforce.organization_id";
            return Err(refused(SOURCE, reason));
        }
        if message.notifications.len() > MAX_NOTIFICATIONS {
            return Err(IngestError::invalid(
                "Notification",
                "too_many",
                &format!("a message may carry at most {MAX_NOTIFICATIONS} notifications"),
            ));
        }
        Ok(message
            .notifications
            .into_iter()
            .enumerate()
            .map(|(index, notification)| self.item(index, notification))
            .collect())
    }

    /// Salesforce ids are case-sensitive; the 18-character form extends the 15-character one.
    fn is_our_org(&self, presented: &str) -> bool {
        let ours = self.organization_id.as_str();
        presented == ours || (ours.len() == 15 && presented.get(..15) == Some(ours))
    }

    fn item(&self, index: usize, notification: Notification) -> Item {
        let record = RecordIds::new(
            notification.fields.get("Id").map(String::as_str),
            notification.id.as_deref(),
        );
        let Some(id) = notification.id else {
            return Item::rejected(
                None,
                &format!("Notification[{index}].Id"),
                "missing_field",
                "every notification needs its Id",
                record,
            );
        };
        if notification.object_type.as_deref() != Some("Contact") {
            return Item::Ignored {
                reason: format!(
                    "{} is not a Contact",
                    notification
                        .object_type
                        .as_deref()
                        .unwrap_or("an untyped sObject")
                ),
            };
        }
        let mut fields = notification.fields;
        let drafted = contact_draft(
            |field| fields.remove(field),
            self.company_field.as_deref(),
            &self.owner_members,
        );
        // Salesforce resends a notification with the same Id until it is acknowledged; a later
        // notification of the same Contact (an edit that set its Email) has its own Id, and the
        // Contact's Id decides whether it is queued (see `Item::contact`).
        Item::contact(
            SOURCE,
            id,
            drafted,
            &format!("Notification[{index}].sObject.{EMAIL}"),
            record,
        )
    }
}

impl Adapter for Salesforce {
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError> {
        require_xml(request)?;
        self.accept(salesforce_xml::parse(body))
    }

    /// Parsing a message of megabytes takes milliseconds: the blocking pool does it, so the HTTP
    /// worker goes on answering other requests (health probes among them).
    fn receive_owned<'a>(
        &'a self,
        request: &'a HttpRequest,
        body: web::Bytes,
    ) -> LocalBoxFuture<'a, Result<Vec<Item>, IngestError>> {
        Box::pin(async move {
            require_xml(request)?;
            let parsed = web::block(move || salesforce_xml::parse(&body))
                .await
                .map_err(|error| {
                    tracing::error!(%error, "Failed to parse a Salesforce message on the blocking pool");
                    IngestError::Store(crate::outbox::StoreError::Unavailable)
                })?;
            self.accept(parsed)
        })
    }

    fn path_token(&self) -> Option<&SecretString> {
        Some(&self.endpoint_token)
    }

    fn max_body_bytes(&self) -> Option<usize> {
        Some(self.max_body_bytes)
    }

    /// The acknowledgement covers the whole message (invalid notifications are logged, since
    /// a resend would not fix them); any refusal is a SOAP fault, which Salesforce retries.
    fn reply(&self, outcome: Result<Report, IngestError>) -> HttpResponse {
        let (status, body) = match outcome {
            Ok(_) => (StatusCode::OK, salesforce_xml::ack()),
            // SOAP 1.1 sends server faults with 500.
            Err(error @ IngestError::Store(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                salesforce_xml::fault(true, &error.to_string()),
            ),
            Err(error) => {
                let message = match &error {
                    IngestError::Invalid { field, .. } => format!("{field}: {error}"),
                    _ => error.to_string(),
                };
                (error.status_code(), salesforce_xml::fault(false, &message))
            }
        };
        HttpResponse::build(status)
            .content_type("text/xml; charset=utf-8")
            .body(body)
    }
}

fn require_xml(request: &HttpRequest) -> Result<(), IngestError> {
    match media_type(request.headers()).as_deref() {
        Some("text/xml" | "application/xml" | "application/soap+xml") => Ok(()),
        _ => Err(IngestError::UnsupportedMediaType { expected: "XML" }),
    }
}

/// An organisation id as Salesforce shows it (Setup > Company Information): 15 or 18 letters
/// and digits. The reason, for the key's error line.
pub fn check_organization_id(id: &str) -> Result<(), &'static str> {
    if !matches!(id.len(), 15 | 18) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("must be the org's 15- or 18-character id (Setup > Company Information)");
    }
    Ok(())
}

/// The endpoint token is a URL path segment: made of unreserved characters only, the URL
/// Salesforce calls and the path compared here are the same bytes. Its length is the settings
/// type's rule.
pub fn check_endpoint_token(token: &str) -> Result<(), &'static str> {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(
            "may hold only letters, digits, '-', '.', '_' and '~' (it is a URL path segment)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn adapter(org: &str) -> Salesforce {
        Salesforce {
            endpoint_token: "3f9c1e6b2a7d48e0b5c4a9f1d2e3b4c5".into(),
            organization_id: org.into(),
            company_field: Some("Account_Name__c".into()),
            max_body_bytes: 4 * 1024 * 1024,
            owner_members: OwnerMembers::from([("005Hn00000ABCdeIAH", 42)]),
        }
    }

    fn contact(id: Option<&str>, fields: &[(&str, &str)]) -> Notification {
        Notification {
            id: id.map(str::to_owned),
            object_type: Some("Contact".into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_fifteen_character_org_id_matches_the_eighteen_character_form() {
        assert!(adapter("00D5e000000AbCdEAF").is_our_org("00D5e000000AbCdEAF"));
        assert!(adapter("00D5e000000AbCd").is_our_org("00D5e000000AbCdEAF"));
        assert!(adapter("00D5e000000AbCd").is_our_org("00D5e000000AbCd"));
        assert!(!adapter("00D5e000000abcd").is_our_org("00D5e000000AbCdEAF"));
        assert!(!adapter("00D5e000000AbCdEAF").is_our_org("00D5e000000AbCd"));
    }

    #[test]
    fn a_contact_takes_the_configured_company_field_and_its_owners_member() {
        let item = adapter("00D5e000000AbCd").item(
            0,
            contact(
                Some("04l1"),
                &[
                    ("Email", "Ada@Example.com"),
                    ("FirstName", "Ada"),
                    ("Account_Name__c", "Analytical Engines"),
                    ("AccountId", "001x"),
                    ("OwnerId", "005Hn00000ABCdeIAH"),
                ],
            ),
        );
        let Item::Event { event, .. } = item else {
            panic!("an event: {item:?}")
        };
        assert_eq!(event.event_id.as_deref(), Some("04l1"));
        assert_eq!(event.email.as_deref(), Some("ada@example.com"));
        let payload: serde_json::Value = serde_json::from_str(&event.payload).expect("json");
        let payload = &payload["guest"];
        assert_eq!(
            *payload,
            serde_json::json!({"email": "Ada@Example.com", "first_name": "Ada",
                               "company_name": "Analytical Engines",
                               "associated_members": [42]})
        );
    }

    #[test]
    fn bad_notifications_are_rejected_and_other_objects_ignored() {
        let sf = adapter("00D5e000000AbCd");
        assert!(matches!(
            sf.item(3, contact(None, &[("Email", "a@example.com")])),
            Item::Rejected { field, .. } if field == "Notification[3].Id"
        ));
        assert!(matches!(
            sf.item(1, contact(Some("04l2"), &[("FirstName", "No mail")])),
            Item::Rejected { field, .. } if field == "Notification[1].sObject.Email"
        ));
        // A refusal names the CRM records to look up: the Contact and the notification.
        let bad = contact(
            Some("04l4"),
            &[("Id", "003xx0000012345"), ("Email", "\"q\"@x.com")],
        );
        let Item::Rejected { code, record, .. } = sf.item(2, bad) else {
            panic!("rejected")
        };
        assert_eq!(code, "invalid_email");
        assert_eq!(
            record,
            RecordIds {
                record_id: Some("003xx0000012345".into()),
                notification_id: Some("04l4".into()),
            }
        );
        let mut lead = contact(Some("04l3"), &[("Email", "a@example.com")]);
        lead.object_type = Some("Lead".into());
        assert!(matches!(sf.item(0, lead), Item::Ignored { .. }));
    }
}
