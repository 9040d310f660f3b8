//! What a CRM's API tells a reconcile: the contacts it created in a time window, a page at a
//! time, and whether its webhook subscription still points at this bridge. Each CRM implements
//! [`Lister`] and [`Subscriptions`] its own way (paging, rate limits, window splits); the
//! reconcile engine (`crate::reconcile`) queues what they list.

use crate::domain::event::StoredEvent;
use crate::domain::{Drafted, FieldProblem, Guest};

use super::FetchError;

/// One contact as a CRM's list API gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The CRM's own record id (Pipedrive person id, HubSpot contact id, Salesforce Contact
    /// Id), the same the CRM's webhooks name.
    pub record_id: String,
    /// When the CRM created it, ms since the epoch.
    pub created_at: i64,
    pub contact: ListedContact,
}

// A page of these lives only until it is queued; boxing the guest would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedContact {
    /// A contact that can become a guest: its normalised email and the event to queue (a
    /// guest, or a Pipedrive person whose organisation the worker reads first).
    Guest { email: String, event: StoredEvent },
    /// No usable email: kept as refused (once per record), like a webhook's.
    Refused {
        /// The CRM's own name of the field at fault.
        field: String,
        code: &'static str,
    },
}

impl Listed {
    /// A listed contact from its draft (see [`ContactDraft::into_guest`](crate::domain::ContactDraft::into_guest)):
    /// `wrap` makes the guest the event to queue; `email_field` names the CRM's email field for
    /// a refusal.
    pub fn from_draft(
        record_id: impl Into<String>,
        created_at: i64,
        drafted: Result<Drafted, FieldProblem>,
        email_field: &str,
        wrap: impl FnOnce(Guest) -> StoredEvent,
    ) -> Self {
        let contact = match drafted {
            Ok(drafted) => ListedContact::Guest {
                email: drafted.normalised_email.into(),
                event: wrap(drafted.guest),
            },
            Err(problem) => ListedContact::Refused {
                field: email_field.to_owned(),
                code: problem.code,
            },
        };
        Self {
            record_id: record_id.into(),
            created_at,
            contact,
        }
    }
}

/// Contacts created at or after `since` and before `until` (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

/// What listing a window cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ListStats {
    /// API requests sent, retries included.
    pub requests: u64,
    /// Pages handed to the sink.
    pub pages: u64,
    /// Answers that were 429 (or the CRM's own rate-limit signal), each waited out.
    pub rate_limited: u64,
    /// Sub-windows a window was split into because the API caps one query's results (HubSpot:
    /// 10,000); 1 when it was not split.
    pub windows: u64,
}

/// Takes each page as it is listed, so a reconcile holds one page in memory.
#[async_trait::async_trait]
pub trait PageSink: Send {
    async fn page(&mut self, contacts: Vec<Listed>) -> anyhow::Result<()>;
}

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The CRM's API refused or failed (after the retries the lister allows itself).
    #[error("the CRM's API: {0}")]
    Fetch(#[from] FetchError),
    /// The bridge could not keep what was listed.
    #[error("{0:#}")]
    Sink(anyhow::Error),
}

/// A CRM's list of contacts created in a window.
#[async_trait::async_trait]
pub trait Lister: Send + Sync {
    /// The source name the CRM's webhooks use (`pipedrive`, `hubspot`, `salesforce`).
    fn source(&self) -> &'static str;

    /// Lists every contact created in `window`, handing pages to `sink` in order, counting in
    /// `stats` as it goes (so a run that stops early still says what it cost); waits out the
    /// CRM's rate limits itself (429 with Retry-After or its rate-limit headers, and its
    /// documented request rate), bounded so a run ends.
    async fn list_counting(
        &self,
        window: Window,
        sink: &mut dyn PageSink,
        stats: &mut ListStats,
    ) -> Result<(), ListError>;

    /// The same, answering the stats of a whole listing.
    async fn list(&self, window: Window, sink: &mut dyn PageSink) -> Result<ListStats, ListError> {
        let mut stats = ListStats::default();
        self.list_counting(window, sink, &mut stats).await?;
        Ok(stats)
    }
}

/// The CRM-side webhook subscription, as `connect --check` and each scheduled reconcile see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Present, active and pointing at this bridge.
    Ok,
    /// None points at this bridge (Pipedrive deletes a webhook after 3 days of failures).
    Missing,
    /// Points at this bridge but is switched off.
    Inactive,
    /// Exists for the event but points elsewhere (or with other credentials).
    WrongUrl,
}

/// What a check found: the state and one line saying what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub state: SubscriptionState,
    pub detail: String,
}

/// What `connect` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connected {
    /// A matching subscription was there already: nothing changed.
    Reused,
    Created,
    /// One for the event existed but was inactive or pointed elsewhere: it now matches.
    Updated,
}

/// A CRM's webhook subscription API, for the bridge's own URL.
#[async_trait::async_trait]
pub trait Subscriptions: Send + Sync {
    /// Whether the subscription exists, is active and points at this bridge.
    async fn check(&self) -> Result<Subscription, FetchError>;
    /// Makes it so, idempotently: a matching subscription is reused, never duplicated.
    async fn connect(&self) -> Result<(Connected, Subscription), FetchError>;
}
