//! The reconcile's list of Pipedrive persons: `GET /api/v2/persons` newest first, walked back a
//! cursor page at a time until a person older than the window is seen (the API has no
//! created-since filter), each person read as its webhook would be.

use chrono::{DateTime, NaiveDateTime};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::Api;
use super::pacing::Pacing;
use super::person::{Lists, Person, TooMany};
use super::values::id_of;
use crate::configuration::{OwnerMembers, PipedriveSettings};
use crate::crm::FetchError;
use crate::crm::listing::{ListError, ListStats, Listed, ListedContact, Lister, PageSink, Window};
use crate::ingest::sources::pipedrive::SOURCE;
use crate::metrics::Metrics;

/// Pipedrive's largest page for cursor-paginated lists.
pub const MAX_PAGE: u32 = 500;

/// Persons created in a window, from Pipedrive's v2 API.
#[derive(Debug)]
pub struct PersonsLister {
    api: Api,
    /// Persons per page, at most [`MAX_PAGE`].
    page: u32,
    pacing: Pacing,
    /// Pipedrive owner → Tallyfy member, for the guest's `associated_members`.
    owners: OwnerMembers,
}

/// One page of `GET /api/v2/persons`.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    data: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    additional_data: Option<More>,
}

#[derive(Debug, Deserialize)]
struct More {
    #[serde(default)]
    next_cursor: Option<String>,
}

impl PersonsLister {
    /// `None` without an API token. `page` is clamped to 1..=[`MAX_PAGE`].
    pub fn new(
        settings: &PipedriveSettings,
        metrics: &Metrics,
        page: u32,
        pacing: Pacing,
    ) -> anyhow::Result<Option<Self>> {
        let Some(token) = &settings.api_token else {
            return Ok(None);
        };
        let api = Api::new(
            &settings.api_base_url,
            &token.to_secret_string(),
            settings.request_timeout,
        )?
        .with_metrics(metrics);
        Ok(Some(Self {
            api,
            page: page.clamp(1, MAX_PAGE),
            pacing,
            owners: settings.owner_members.clone(),
        }))
    }

    /// One page, newest first, after `cursor`.
    async fn page(&self, cursor: Option<&str>, stats: &mut ListStats) -> Result<Page, FetchError> {
        let limit = self.page.to_string();
        let mut params = vec![
            ("sort_by", "add_time"),
            ("sort_direction", "desc"),
            ("limit", limit.as_str()),
        ];
        if let Some(cursor) = cursor {
            params.push(("cursor", cursor));
        }
        let url = reqwest::Url::parse_with_params(&self.api.url("/api/v2/persons"), &params)
            .map_err(|error| FetchError::Permanent {
                status: 0,
                detail: format!("the persons URL: {error}"),
            })?;
        let body = self
            .pacing
            .call(stats, || {
                self.api.send(self.api.request(Method::GET, url.as_str()))
            })
            .await?;
        serde_json::from_slice(&body).map_err(|error| FetchError::Transient {
            status: Some(200),
            detail: format!("a persons page that is not Pipedrive's shape: {error}"),
        })
    }

    /// A listed person, read as its webhook would be; `None` without an id.
    fn listed(&self, person: &Map<String, Value>, created_at: i64) -> Option<Listed> {
        let record_id = id_of(person.get("id"))?;
        Some(match Person::read(person, Lists::V2) {
            Ok(Person { draft, extras }) => Listed::from_draft(
                record_id,
                created_at,
                draft.into_guest(),
                Lists::V2.emails(),
                |guest| extras.event(guest, true, &self.owners),
            ),
            Err(TooMany { list, .. }) => Listed {
                record_id,
                created_at,
                contact: ListedContact::Refused {
                    field: list.to_owned(),
                    code: "too_many",
                },
            },
        })
    }
}

#[async_trait::async_trait]
impl Lister for PersonsLister {
    fn source(&self) -> &'static str {
        SOURCE
    }

    #[tracing::instrument(name = "pipedrive.list_persons", skip_all, fields(since = window.since, until = window.until))]
    async fn list_counting(
        &self,
        window: Window,
        sink: &mut dyn PageSink,
        stats: &mut ListStats,
    ) -> Result<(), ListError> {
        stats.windows = 1;
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(cursor.as_deref(), stats).await?;
            let mut listed = Vec::new();
            let mut past_the_window = false;
            for person in page.data.unwrap_or_default() {
                let Some(created_at) = added_at(&person) else {
                    tracing::warn!(
                        person = id_of(person.get("id")).as_deref(),
                        "Pipedrive listed a person without a readable add_time: skipped"
                    );
                    continue;
                };
                if created_at >= window.until {
                    continue;
                }
                if created_at < window.since {
                    // Newest first: everyone after this one is older still.
                    past_the_window = true;
                    break;
                }
                listed.extend(self.listed(&person, created_at));
            }
            if !listed.is_empty() {
                sink.page(listed).await.map_err(ListError::Sink)?;
                stats.pages += 1;
            }
            cursor = page.additional_data.and_then(|more| more.next_cursor);
            if past_the_window || cursor.is_none() {
                return Ok(());
            }
        }
    }
}

/// `add_time` in ms since the epoch: RFC 3339 in v2, `YYYY-MM-DD HH:MM:SS` (UTC) in v1.
fn added_at(person: &Map<String, Value>) -> Option<i64> {
    let text = person.get("add_time")?.as_str()?.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_millis())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .map(|at| at.and_utc().timestamp_millis())
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else {
            panic!("object")
        };
        map
    }

    #[test]
    fn add_time_is_read_in_both_of_pipedrives_forms() {
        let v2 = person(json!({"add_time": "2026-01-01T00:00:01Z"}));
        let v1 = person(json!({"add_time": "2026-01-01 00:00:01"}));
        assert_eq!(added_at(&v2), Some(1_767_225_601_000));
        assert_eq!(added_at(&v1), Some(1_767_225_601_000));
        assert_eq!(added_at(&person(json!({"add_time": "yesterday"}))), None);
        assert_eq!(added_at(&person(json!({}))), None);
    }
}
