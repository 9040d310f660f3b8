//! `POST /webhooks/{source}`: one adapter per CRM checks the sender its way, turns the body into
//! contact events (or refusals, kept too), and answers the way that CRM expects, only once every
//! one is committed.

pub(crate) mod hubspot;
pub(crate) mod pipedrive;
mod report;
pub(crate) mod salesforce;
pub mod salesforce_xml;
pub mod xml_shape;

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::{LocalBoxFuture, join_all};
use secrecy::{ExposeSecret, SecretString};

use super::{IngestError, IngestState, check_encoding, read_body};
use crate::configuration::SourcesSettings;
use crate::domain::event::StoredEvent;
use crate::domain::{Drafted, FieldProblem};
use crate::http_auth::secrets_match;
use crate::outbox::{Accepted, CrmRecord, NewEvent, NewRefusal};
use report::log_report;
pub use report::{ItemReport, RecordIds, Report};

/// What one item of a CRM's delivery turned out to be.
#[derive(Debug)]
pub enum Item {
    /// A contact creation to store, with the fields Tallyfy's limits made us leave out.
    Event {
        event: NewEvent,
        left_out: Vec<&'static str>,
    },
    /// Not a contact creation: acknowledged, nothing stored.
    Ignored { reason: String },
    /// A contact creation that cannot become a guest: reported, logged and kept in `refused`
    /// (its ids and why, never its contact data); nothing is queued.
    Rejected {
        /// The CRM's id of the event, when it has one: a resend is kept once.
        event_id: Option<String>,
        field: String,
        code: &'static str,
        message: String,
        record: RecordIds,
    },
}

/// What a row is known by when it is stored.
enum RowKey {
    /// The contact's normalised email.
    Email(String),
    /// The CRM record the webhook names, until its email is read.
    CrmRecord(String),
}

impl Item {
    /// A contact event of `source`, or its rejection naming the CRM's own field for the email.
    fn contact(
        source: &'static str,
        event_id: String,
        drafted: Result<Drafted, FieldProblem>,
        email_field: &str,
        record: RecordIds,
    ) -> Self {
        match drafted {
            Ok(drafted) => Item::event(
                source,
                event_id,
                RowKey::Email(drafted.normalised_email.into()),
                record.record_id.map(CrmRecord::unseen),
                StoredEvent::Guest {
                    guest: drafted.guest,
                },
                drafted.dropped.iter().map(|p| p.field).collect(),
            ),
            Err(problem) => Item::rejected(
                Some(event_id),
                email_field,
                problem.code,
                &problem.message,
                record,
            ),
        }
    }

    /// An event whose row is keyed by `key`, of CRM record `record` when it names one, and
    /// stores `stored` (a guest, or what the worker must complete first).
    fn event(
        source: &'static str,
        event_id: String,
        key: RowKey,
        record: Option<CrmRecord>,
        stored: StoredEvent,
        left_out: Vec<&'static str>,
    ) -> Self {
        let (email, crm_record) = match key {
            RowKey::Email(email) => (Some(email), None),
            RowKey::CrmRecord(record) => (None, Some(record)),
        };
        Item::Event {
            event: NewEvent {
                source,
                event_id: Some(event_id),
                email,
                crm_record,
                payload: stored.encode(),
                record,
            },
            left_out,
        }
    }

    fn rejected(
        event_id: Option<String>,
        field: &str,
        code: &'static str,
        message: &str,
        record: RecordIds,
    ) -> Self {
        Item::Rejected {
            event_id,
            field: field.to_owned(),
            code,
            message: message.to_owned(),
            record,
        }
    }
}

/// Logs why a CRM's request was refused (for operators only) and answers 401.
fn refused(source: &str, reason: &str) -> IngestError {
    tracing::warn!(source, reason, "Webhook refused: authentication failed");
    IngestError::Unauthorized
}

/// The body of a CRM that speaks JSON: the content type checked, then parsed (a repeated key
/// refuses it, as for the canonical format).
fn json_body(request: &HttpRequest, body: &[u8]) -> Result<serde_json::Value, IngestError> {
    super::require_json(request.headers())?;
    super::json::parse(body)
}

/// How a CRM's webhook is read and answered.
pub trait Adapter: Send + Sync {
    /// Authenticates the request (a refusal is [`IngestError::Unauthorized`], with the reason
    /// logged here) and parses it into items. An error refuses the whole request.
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError>;

    /// What the bridge runs: `receive`, unless parsing is too costly for an HTTP worker thread
    /// (Salesforce's XML), when the adapter moves that part to the blocking pool.
    fn receive_owned<'a>(
        &'a self,
        request: &'a HttpRequest,
        body: web::Bytes,
    ) -> LocalBoxFuture<'a, Result<Vec<Item>, IngestError>> {
        Box::pin(std::future::ready(self.receive(request, &body)))
    }

    /// The secret the CRM's URL ends with, `/webhooks/{source}/{token}`, checked before the body
    /// is read. None: the CRM authenticates otherwise, and a path with a token is not found.
    fn path_token(&self) -> Option<&SecretString> {
        None
    }

    /// The largest body this CRM legitimately sends; None: `http.max_body_bytes`.
    fn max_body_bytes(&self) -> Option<usize> {
        None
    }

    /// The answer: JSON by default.
    fn reply(&self, outcome: Result<Report, IngestError>) -> HttpResponse {
        json_reply(outcome)
    }
}

/// 200 with the report, or the error's status and JSON body.
fn json_reply(outcome: Result<Report, IngestError>) -> HttpResponse {
    match outcome {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(error) => error.error_response(),
    }
}

/// The configured adapters by path segment; a source without settings is absent (404).
#[derive(Default)]
pub struct Sources(HashMap<&'static str, Box<dyn Adapter>>);

impl Sources {
    pub fn from_settings(settings: &SourcesSettings) -> Self {
        let mut sources = Self::default();
        if let Some(adapter) = pipedrive::Pipedrive::from_settings(&settings.pipedrive) {
            sources.0.insert(pipedrive::SOURCE, Box::new(adapter));
        }
        if let Some(adapter) = hubspot::HubSpot::from_settings(&settings.hubspot) {
            sources.0.insert(hubspot::SOURCE, Box::new(adapter));
        }
        if let Some(adapter) = salesforce::Salesforce::from_settings(&settings.salesforce) {
            sources.0.insert(salesforce::SOURCE, Box::new(adapter));
        }
        sources
    }

    /// The names of the configured sources, for the start-up log.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.0.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The paths the CRMs call, a secret segment shown as `{token}`, for `/status`.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .0
            .iter()
            .map(|(name, adapter)| match adapter.path_token() {
                Some(_) => format!("/webhooks/{name}/{{token}}"),
                None => format!("/webhooks/{name}"),
            })
            .collect();
        paths.sort_unstable();
        paths
    }
}

/// A CRM that cannot sign (Salesforce) calls a URL with its secret token segment.
#[utoipa::path(post, path = "/webhooks/{source}/{token}", tag = "webhooks",
    params(
        ("source" = String, Path, description = "`salesforce`"),
        ("token" = String, Path, description = "The source's secret endpoint token"),
    ),
    request_body(content = String, description = "Salesforce's outbound message (SOAP)", content_type = "text/xml"),
    responses(
        (status = 200, description = "Pipedrive and HubSpot: what became of each item. Salesforce: its SOAP acknowledgement",
            content((Report = "application/json"), (String = "text/xml"))),
        (status = 400, description = "Malformed body, not UTF-8 (`invalid_encoding`); a SOAP fault for Salesforce", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 401, description = "The CRM's authentication failed; a SOAP fault for Salesforce", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 404, description = "No such source configured", body = crate::api_error::ErrorBody),
        (status = 405, description = "Another method (`method_not_allowed`)", body = crate::api_error::ErrorBody),
        (status = 408, description = "The body did not arrive in time", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 413, description = "The body is too large", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 415, description = "A `Content-Encoding` or the wrong content type", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 422, description = "A field is wrong; `field` names it", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 503, description = "Not committed; `Retry-After: 5`", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
    ))]
#[allow(dead_code)] // Documents the route `post_source` serves.
fn post_crm_with_token() {}

/// `POST /webhooks/{source}` and `POST /webhooks/{source}/{token}`.
#[utoipa::path(post, path = "/webhooks/{source}", tag = "webhooks",
    security(("pipedrive_basic" = []), ("hubspot_signature" = [])),
    params(("source" = crate::openapi::CrmSource, Path, description = "The CRM; one not configured answers 404")),
    request_body(content = Object, description = "The CRM's webhook body, as the CRM sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "Pipedrive and HubSpot: what became of each item. Salesforce: its SOAP acknowledgement",
            content((Report = "application/json"), (String = "text/xml"))),
        (status = 400, description = "Malformed body, not UTF-8 (`invalid_encoding`); a SOAP fault for Salesforce", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 401, description = "The CRM's authentication failed; a SOAP fault for Salesforce", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 404, description = "No such source configured", body = crate::api_error::ErrorBody),
        (status = 405, description = "Another method (`method_not_allowed`)", body = crate::api_error::ErrorBody),
        (status = 408, description = "The body did not arrive in time", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 413, description = "The body is too large", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 415, description = "A `Content-Encoding` or the wrong content type", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 422, description = "A field is wrong; `field` names it", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
        (status = 503, description = "Not committed; `Retry-After: 5`", content((crate::api_error::ErrorBody = "application/json"), (String = "text/xml"))),
    ))]
#[tracing::instrument(skip_all, fields(source))]
pub(super) async fn post_source(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    let source = request.match_info().get("source").unwrap_or_default();
    let token = request.match_info().get("token");
    let not_found = |message: String| {
        crate::api_error::json_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            message,
            None,
        )
    };
    let Some((&source, adapter)) = state.sources.0.get_key_value(source) else {
        return not_found(format!("no webhook source named {source:?} is configured"));
    };
    tracing::Span::current().record("source", source);
    let expected = adapter.path_token();
    if expected.is_none() && token.is_some() {
        return not_found(format!("the {source} webhook's URL has no token segment"));
    }
    // Before the body is read: a caller without the token costs nothing more.
    let token_refused = match (expected, token) {
        (Some(_), None) => Some("the URL has no token segment"),
        (Some(expected), Some(token))
            if !secrets_match(token.as_bytes(), expected.expose_secret().trim().as_bytes()) =>
        {
            Some("the URL's token segment is wrong")
        }
        _ => None,
    };
    let outcome = match token_refused {
        Some(reason) => Err(refused(source, reason)),
        None => receive(source, adapter.as_ref(), &request, payload, &state).await,
    };
    match &outcome {
        Ok(report) => log_report(source, report),
        Err(IngestError::Store(_) | IngestError::Unauthorized) => {}
        Err(error) => tracing::info!(reason = %error, "Webhook refused"),
    }
    adapter.reply(outcome)
}

async fn receive(
    source: &'static str,
    adapter: &dyn Adapter,
    request: &HttpRequest,
    payload: web::Payload,
    state: &IngestState,
) -> Result<Report, IngestError> {
    let limit = adapter.max_body_bytes().unwrap_or(state.max_body_bytes);
    let body = read_body(request, payload, limit, state.body_timeout).await?;
    check_encoding(request.headers(), &body)?;
    let items = adapter.receive_owned(request, body).await?;
    // Every event and refusal of the delivery goes to the writer at once, so they share commits;
    // the answer waits for all of them.
    let reports = join_all(items.into_iter().map(|item| async {
        Ok(match item {
            Item::Event { event, left_out } => match state.writer.append(event).await? {
                Accepted::Stored { id } => ItemReport::Queued { id, left_out },
                Accepted::Duplicate { id } => ItemReport::Duplicate { id },
                Accepted::NotNeeded => ItemReport::Ignored {
                    reason: "an update of a record that was never refused".into(),
                },
            },
            Item::Ignored { reason } => ItemReport::Ignored { reason },
            Item::Rejected {
                event_id,
                field,
                code,
                message,
                record,
            } => {
                let refusal = NewRefusal {
                    source,
                    event_id,
                    record_id: record.record_id.clone(),
                    notification_id: record.notification_id.clone(),
                    reason: code,
                    field: field.clone(),
                };
                state.writer.refuse(refusal).await?;
                ItemReport::Rejected {
                    field,
                    code,
                    message,
                    record,
                }
            }
        })
    }))
    .await;
    Ok(Report {
        items: reports
            .into_iter()
            .collect::<Result<_, crate::outbox::StoreError>>()?,
    })
}
