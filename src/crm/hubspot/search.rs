//! A reconcile's listing of HubSpot contacts: `POST /crm/v3/objects/contacts/search` by
//! `createdate`, paged with `after`, a window split in time wherever one query would match more
//! than the search returns (10,000), requests paced and 429s waited out.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::contact::{HubSpotContact, PROPERTIES};
use super::pacing::Pacer;
use super::{WINDOW, api_base};
use crate::configuration::{HubSpotSettings, OwnerMembers};
use crate::crm::listing::{ListError, ListStats, Listed, Lister, PageSink, Window};
use crate::crm::{FetchError, fetch, http_client};
use crate::domain::event::StoredEvent;
use crate::ingest::sources::hubspot::SOURCE;
use crate::metrics::Metrics;

/// How much a listing may ask of HubSpot, and how it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Contacts per page: the search's documented maximum is 200.
    pub page_size: u32,
    /// The most results one query can page through (HubSpot: 10,000; past it, 400).
    pub cap: u64,
    /// Least time between two requests.
    pub interval: Duration,
    /// 429s in a row one request waits out before the listing gives up.
    pub rate_limit_retries: u32,
    /// The longest wait a 429 may ask for; longer (a daily limit) ends the listing.
    pub max_wait: Duration,
}

impl SearchLimits {
    /// HubSpot's documented limits, `interval` apart.
    pub fn hubspot(interval: Duration) -> Self {
        Self {
            page_size: 200,
            cap: 10_000,
            interval,
            rate_limit_retries: 5,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Wait after a 429 that says nothing: the search's limit is per second.
const SECONDLY: Duration = Duration::from_secs(1);

/// HubSpot's contact search, as a [`Lister`].
pub struct ContactSearch {
    http: reqwest::Client,
    /// `{base}/crm/v3/objects/contacts/search`
    url: String,
    token: SecretString,
    owners: OwnerMembers,
    metrics: Metrics,
    limits: SearchLimits,
    /// One pace for every listing of this lister: the limit is the account's.
    pacer: Pacer,
}

impl ContactSearch {
    /// The search with `settings`' token, base URL, timeout and owners, within `limits`.
    pub fn new(
        settings: &HubSpotSettings,
        token: SecretString,
        metrics: &Metrics,
        limits: SearchLimits,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(settings.request_timeout)?,
            url: format!(
                "{}/crm/v3/objects/contacts/search",
                api_base(&settings.api_base_url)?
            ),
            token,
            owners: settings.owner_members.clone(),
            metrics: metrics.clone(),
            limits,
            pacer: Pacer::new(limits.interval),
        })
    }

    /// One page of contacts created in `part`, from `after` on.
    async fn page(
        &self,
        part: Window,
        after: Option<&str>,
        stats: &mut ListStats,
    ) -> Result<Page, FetchError> {
        let mut body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "createdate", "operator": "GTE", "value": part.since.to_string()},
                {"propertyName": "createdate", "operator": "LT", "value": part.until.to_string()},
            ]}],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "properties": PROPERTIES.iter().chain(&["createdate"]).collect::<Vec<_>>(),
            "limit": self.limits.page_size,
        });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        let answer = self.send(&body, stats).await?;
        let page: SearchPage =
            serde_json::from_slice(&answer).map_err(|error| FetchError::Transient {
                status: None,
                detail: format!("the search's answer is not a page of contacts: {error}"),
            })?;
        Ok(Page {
            total: page.total,
            after: page.paging.and_then(|p| p.next).map(|next| next.after),
            contacts: page
                .results
                .into_iter()
                .map(|found| self.listed(found, part))
                .collect(),
        })
    }

    /// Sends the search when the pace allows, waiting out each 429 up to the limits.
    #[tracing::instrument(name = "hubspot.search", skip_all, fields(status))]
    async fn send(&self, body: &Value, stats: &mut ListStats) -> Result<Vec<u8>, FetchError> {
        let mut limited = 0;
        loop {
            self.pacer.ready().await;
            stats.requests += 1;
            let request = self
                .http
                .post(&self.url)
                .bearer_auth(self.token.expose_secret())
                .json(body);
            match fetch(request, WINDOW, &self.metrics, SOURCE).await {
                Err(FetchError::RateLimited { retry_after }) => {
                    stats.rate_limited += 1;
                    let wait = retry_after.unwrap_or(SECONDLY);
                    if limited >= self.limits.rate_limit_retries || wait > self.limits.max_wait {
                        return Err(FetchError::RateLimited { retry_after });
                    }
                    limited += 1;
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "HubSpot's search is rate limited: waiting"
                    );
                    self.pacer.hold(wait);
                }
                answer => return answer,
            }
        }
    }

    fn listed(&self, found: Found, part: Window) -> Listed {
        // Without a readable creation time the contact counts as created at the window's start,
        // which never moves a watermark past anything.
        let created_at = found
            .properties
            .get("createdate")
            .and_then(Value::as_str)
            .or(found.created_at.as_deref())
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map_or(part.since, |at| at.timestamp_millis());
        let contact = HubSpotContact::from_properties(&found.properties, &self.owners);
        Listed::from_draft(
            found.id,
            created_at,
            contact.into_guest(),
            "properties.email",
            |guest| StoredEvent::Guest { guest },
        )
    }
}

#[async_trait::async_trait]
impl Lister for ContactSearch {
    fn source(&self) -> &'static str {
        SOURCE
    }

    async fn list_counting(
        &self,
        window: Window,
        sink: &mut dyn PageSink,
        stats: &mut ListStats,
    ) -> Result<(), ListError> {
        // Parts still to list, the earliest last: pages reach the sink in creation order.
        let mut parts = vec![window];
        while let Some(part) = parts.pop() {
            let mut page = self.page(part, None, stats).await?;
            if page.total > self.limits.cap {
                let (early, late) = halves(part).ok_or_else(|| too_many(part, page.total))?;
                tracing::info!(
                    total = page.total,
                    "HubSpot's search matches too many contacts: window split"
                );
                parts.push(late);
                parts.push(early);
                continue;
            }
            stats.windows += 1;
            loop {
                let after = page.after.take();
                if !page.contacts.is_empty() {
                    stats.pages += 1;
                    sink.page(std::mem::take(&mut page.contacts))
                        .await
                        .map_err(ListError::Sink)?;
                }
                let Some(after) = after else { break };
                page = self.page(part, Some(&after), stats).await?;
            }
        }
        Ok(())
    }
}

/// `window` cut in two at its middle millisecond; `None` when it is one millisecond wide.
fn halves(window: Window) -> Option<(Window, Window)> {
    let middle = window.since + (window.until - window.since) / 2;
    (middle > window.since).then_some((
        Window {
            since: window.since,
            until: middle,
        },
        Window {
            since: middle,
            until: window.until,
        },
    ))
}

fn too_many(part: Window, total: u64) -> ListError {
    ListError::Fetch(FetchError::Permanent {
        status: 400,
        detail: format!(
            "{total} contacts were created at {} ms, more than one search can list",
            part.since
        ),
    })
}

/// One page as the lister uses it.
struct Page {
    total: u64,
    after: Option<String>,
    contacts: Vec<Listed>,
}

/// The search's answer, as documented: `total`, `results`, `paging.next.after`.
#[derive(Deserialize)]
struct SearchPage {
    total: u64,
    results: Vec<Found>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: String,
}

#[derive(Deserialize)]
struct Found {
    id: String,
    properties: Map<String, Value>,
    #[serde(rename = "createdAt")]
    created_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_splits_at_its_middle_down_to_one_millisecond() {
        let window = Window {
            since: 1_000,
            until: 2_001,
        };
        let (early, late) = halves(window).expect("split");
        assert_eq!(
            (early, late),
            (
                Window {
                    since: 1_000,
                    until: 1_500
                },
                Window {
                    since: 1_500,
                    until: 2_001
                }
            )
        );
        assert_eq!(halves(Window { since: 7, until: 8 }), None);
    }

    #[test]
    fn a_page_reads_as_documented() {
        let page: SearchPage = serde_json::from_str(
            r#"{"total": 2, "results": [{"id": "51", "properties": {"email": "a@example.com",
                "createdate": "2026-12-01T10:00:00.250Z", "hs_object_id": "51"},
                "createdAt": "2026-12-01T10:00:00.250Z", "archived": false}],
                "paging": {"next": {"after": "1", "link": "?after=1"}}}"#,
        )
        .expect("a page");
        assert_eq!(page.total, 2);
        assert_eq!(
            page.paging.and_then(|p| p.next).map(|n| n.after),
            Some("1".into())
        );
        assert_eq!(page.results[0].id, "51");
        let last: SearchPage =
            serde_json::from_str(r#"{"total": 0, "results": []}"#).expect("a last page");
        assert!(last.paging.is_none());
    }
}
