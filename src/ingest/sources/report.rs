//! What became of each item of a CRM's delivery: the report the CRM gets, and the log lines an
//! operator finds a refused record by (its CRM ids, never its email or payload), as kept in
//! `refused` too.

use serde::Serialize;

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

/// What became of each item, in the order the CRM sent them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SourceReport)]
pub struct Report {
    pub items: Vec<ItemReport>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
        #[schema(ignore)]
        record: RecordIds,
    },
}

/// One line per delivery, plus one per rejected item naming its field and the CRM record it
/// came from (to find it in the CRM, or with `GET /refused`); never the payload or the email.
pub(super) fn log_report(source: &str, report: &Report) {
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
                    "CRM item refused; kept in refused, nothing queued"
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
                line["fields"]["message"] == "CRM item refused; kept in refused, nothing queued"
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
