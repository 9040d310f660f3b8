//! `POST /webhooks/{source}`: one adapter per CRM checks the sender its way, turns the body into
//! contact events, and answers the way that CRM expects, only once every event is committed.

mod hubspot;
mod pipedrive;
mod salesforce;
mod salesforce_xml;

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::join_all;
use serde::Serialize;

use super::{IngestError, IngestState, check_encoding, read_body};
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
        record: RecordIds,
    },
}

/// Where a refused item lives in its CRM, so an operator can find it there: ids only, never
/// contact data. An id that is not a plain token (≤ 64 letters, digits, `-`, `_`) is left out,
/// so a hostile one cannot forge or flood a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIds {
    /// The CRM's own record: Pipedrive person id, HubSpot objectId, Salesforce sObject Id.
    pub record_id: Option<String>,
    /// The delivery it came in, where the CRM names one: Salesforce's Notification Id.
    pub notification_id: Option<String>,
}

impl RecordIds {
    pub fn new(record_id: Option<&str>, notification_id: Option<&str>) -> Self {
        let plain = |id: Option<&str>| {
            id.map(str::trim)
                .filter(|id| {
                    (1..=64).contains(&id.len())
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_owned)
        };
        Self {
            record_id: plain(record_id),
            notification_id: plain(notification_id),
        }
    }

    pub fn record(record_id: &str) -> Self {
        Self::new(Some(record_id), None)
    }
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
                drafted.normalised_email,
                &drafted.guest,
                drafted.dropped.iter().map(|p| p.field).collect(),
            ),
            Err(problem) => Item::rejected(email_field, problem.code, &problem.message, record),
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
            Err(error) => {
                Item::rejected("", "invalid_type", &error.to_string(), RecordIds::default())
            }
        }
    }

    fn rejected(field: &str, code: &'static str, message: &str, record: RecordIds) -> Self {
        Item::Rejected {
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
        /// Logged, not sent: the CRM already knows its own record.
        #[serde(skip)]
        record: RecordIds,
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
    check_encoding(request.headers(), &body)?;
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
                record,
            } => ItemReport::Rejected {
                field,
                code,
                message,
                record,
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

/// One line per delivery, plus one per rejected item naming its field and the CRM record it
/// came from (to find it in the CRM); never the payload or the email.
fn log_report(source: &str, report: &Report) {
    let count = |pick: fn(&ItemReport) -> bool| report.items.iter().filter(|i| pick(i)).count();
    for (index, item) in report.items.iter().enumerate() {
        match item {
            ItemReport::Rejected {
                field,
                code,
                record,
                ..
            } => {
                tracing::info!(
                    source,
                    index,
                    record_id = record.record_id.as_deref(),
                    notification_id = record.notification_id.as_deref(),
                    %field,
                    code,
                    "CRM item refused; nothing stored for it"
                )
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_refused_item_is_logged_with_its_crm_record_ids_and_never_its_email() {
        let report = Report {
            items: vec![ItemReport::Rejected {
                field: "Notification[0].sObject.Email".into(),
                code: "invalid_email",
                message: "email must be a plain address".into(),
                record: RecordIds::new(Some("0035e00000AbCdE"), Some("04l5e00000Q1w2e")),
            }],
        };
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || log_report("salesforce", &report));

        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
        let refused: serde_json::Value = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .find(|line: &serde_json::Value| {
                line["fields"]["message"] == "CRM item refused; nothing stored for it"
            })
            .unwrap_or_else(|| panic!("no refusal line in {text}"));
        assert_eq!(refused["fields"]["record_id"], "0035e00000AbCdE");
        assert_eq!(refused["fields"]["notification_id"], "04l5e00000Q1w2e");
        assert_eq!(refused["fields"]["field"], "Notification[0].sObject.Email");
        assert!(!text.contains("plain address"), "{text}");
    }

    #[test]
    fn only_plain_ids_are_kept_for_logs() {
        let ids = RecordIds::new(Some(" 4711 "), Some("a\nforged line"));
        assert_eq!(ids.record_id.as_deref(), Some("4711"));
        assert_eq!(ids.notification_id, None);
        assert_eq!(RecordIds::record(&"9".repeat(65)).record_id, None);
    }
}
