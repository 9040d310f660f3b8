//! `POST /webhooks/{source}`: one adapter per CRM checks the sender its way, turns the body into
//! contact events, and answers the way that CRM expects, only once every event is committed.

pub(crate) mod hubspot;
pub(crate) mod pipedrive;
pub(crate) mod salesforce;
pub(crate) mod salesforce_xml;

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::join_all;
use serde::Serialize;

use super::{IngestError, IngestState, read_body};
use crate::configuration::SourcesSettings;
use crate::outbox::NewEvent;
use crate::tallyfy::fields::{Drafted, FieldProblem};

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
    /// A contact creation that cannot become a guest: reported and logged, nothing stored.
    Rejected {
        field: String,
        code: &'static str,
        message: String,
    },
}

impl Item {
    /// A contact event of `source`, or its rejection naming the CRM's own field for the email.
    fn contact(
        source: &'static str,
        event_id: String,
        drafted: Result<Drafted, FieldProblem>,
        email_field: &str,
    ) -> Self {
        match drafted {
            Ok(drafted) => Item::event(
                source,
                event_id,
                drafted.normalised_email,
                &drafted.guest,
                drafted.dropped.iter().map(|p| p.field).collect(),
            ),
            Err(problem) => Item::rejected(email_field, problem.code, &problem.message),
        }
    }

    /// An event whose row is keyed by `email` and stores `payload` (a guest, or what the worker
    /// must complete first).
    fn event(
        source: &'static str,
        event_id: String,
        email: String,
        payload: &impl Serialize,
        left_out: Vec<&'static str>,
    ) -> Self {
        match serde_json::to_string(payload) {
            Ok(payload) => Item::Event {
                event: NewEvent {
                    source,
                    event_id: Some(event_id),
                    email,
                    payload,
                },
                left_out,
            },
            // Our own types always serialise; this only keeps the error path total.
            Err(error) => Item::rejected("", "invalid_type", &error.to_string()),
        }
    }

    fn rejected(field: &str, code: &'static str, message: &str) -> Self {
        Item::Rejected {
            field: field.to_owned(),
            code,
            message: message.to_owned(),
        }
    }
}

/// Logs why a CRM's request was refused (for operators only) and answers 401.
fn refused(source: &str, reason: &str) -> IngestError {
    tracing::warn!(source, reason, "Webhook refused: authentication failed");
    IngestError::Unauthorized
}

/// The body of a CRM that speaks JSON: the content type checked, then parsed.
fn json_body(request: &HttpRequest, body: &[u8]) -> Result<serde_json::Value, IngestError> {
    super::require_json(request.headers())?;
    serde_json::from_slice(body).map_err(|e| IngestError::MalformedJson {
        message: format!("body is not valid JSON: {e}"),
    })
}

/// How a CRM's webhook is read and answered.
pub trait Adapter: Send + Sync {
    /// Authenticates the request (a refusal is [`IngestError::Unauthorized`], with the reason
    /// logged here) and parses it into items. An error refuses the whole request.
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError>;

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

/// What became of each item, in the order the CRM sent them.
#[derive(Debug, Serialize)]
pub struct Report {
    pub items: Vec<ItemReport>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemReport {
    Queued {
        id: i64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        left_out: Vec<&'static str>,
    },
    Duplicate {
        id: i64,
    },
    Ignored {
        reason: String,
    },
    Rejected {
        field: String,
        code: &'static str,
        message: String,
    },
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
}

#[tracing::instrument(skip_all, fields(source = %source))]
pub(super) async fn post_source(
    request: HttpRequest,
    source: web::Path<String>,
    payload: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    let Some((&source, adapter)) = state.sources.0.get_key_value(source.as_str()) else {
        return crate::api_error::json_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no webhook source named {:?} is configured",
                source.as_str()
            ),
            None,
        );
    };
    let outcome = receive(adapter.as_ref(), &request, payload, &state).await;
    match &outcome {
        Ok(report) => log_report(source, report),
        Err(IngestError::Store(_) | IngestError::Unauthorized) => {}
        Err(error) => tracing::info!(reason = %error, "Webhook refused"),
    }
    adapter.reply(outcome)
}

async fn receive(
    adapter: &dyn Adapter,
    request: &HttpRequest,
    payload: web::Payload,
    state: &IngestState,
) -> Result<Report, IngestError> {
    let body = read_body(request.headers(), payload, state.max_body_bytes).await?;
    let items = adapter.receive(request, &body)?;
    // Every event of the delivery goes to the writer at once, so they share commits; the answer
    // waits for all of them.
    let reports = join_all(items.into_iter().map(|item| async {
        Ok(match item {
            Item::Event { event, left_out } => {
                let accepted = state.writer.append(event).await?;
                if accepted.duplicate {
                    ItemReport::Duplicate { id: accepted.id }
                } else {
                    ItemReport::Queued {
                        id: accepted.id,
                        left_out,
                    }
                }
            }
            Item::Ignored { reason } => ItemReport::Ignored { reason },
            Item::Rejected {
                field,
                code,
                message,
            } => ItemReport::Rejected {
                field,
                code,
                message,
            },
        })
    }))
    .await;
    Ok(Report {
        items: reports
            .into_iter()
            .collect::<Result<_, crate::outbox::StoreError>>()?,
    })
}

/// One line per delivery, plus one per rejected item naming its field; never the payload.
fn log_report(source: &str, report: &Report) {
    let count = |pick: fn(&ItemReport) -> bool| report.items.iter().filter(|i| pick(i)).count();
    for (index, item) in report.items.iter().enumerate() {
        match item {
            ItemReport::Rejected { field, code, .. } => {
                tracing::info!(source, index, %field, code, "CRM item refused; nothing stored for it")
            }
            ItemReport::Queued { left_out, .. } if !left_out.is_empty() => {
                tracing::info!(
                    source,
                    index,
                    ?left_out,
                    "Fields over Tallyfy's limits left out"
                )
            }
            _ => {}
        }
    }
    tracing::info!(
        source,
        queued = count(|i| matches!(i, ItemReport::Queued { .. })),
        duplicate = count(|i| matches!(i, ItemReport::Duplicate { .. })),
        ignored = count(|i| matches!(i, ItemReport::Ignored { .. })),
        rejected = count(|i| matches!(i, ItemReport::Rejected { .. })),
        "CRM webhook handled"
    );
}
