//! The reconcile's list of Salesforce Contacts created in a window: one SOQL query, its batches
//! followed to the end, each handed to the sink as a page.

use anyhow::Context;
use reqwest::Url;

use super::api::Api;
use super::contact::ACCOUNT_NAME;
use super::query;
use super::retry::Retry;
use crate::configuration::{OwnerMembers, SalesforceSettings};
use crate::crm::listing::{ListError, ListStats, Lister, PageSink, Window};
use crate::metrics::Metrics;

#[derive(Debug)]
pub struct SalesforceLister {
    api: Api,
    instance: Url,
    /// `{instance}/services/data/{api_version}/query`
    query_url: Url,
    /// What the query selects for the company: `company_field`, else `Account.Name`.
    company: String,
    owners: OwnerMembers,
}

impl SalesforceLister {
    /// None until the API keys are set (validation makes them come together).
    pub fn from_settings(
        settings: &SalesforceSettings,
        metrics: &Metrics,
        retry: Retry,
    ) -> anyhow::Result<Option<Self>> {
        let (Some(instance), Some(client_id), Some(secret)) = (
            settings.instance_url.as_deref(),
            settings.client_id.as_deref(),
            settings.client_secret.as_ref(),
        ) else {
            return Ok(None);
        };
        let instance = Url::parse(instance.trim().trim_end_matches('/'))
            .context("Failed to parse sources.salesforce.instance_url")?;
        let query_url = instance
            .join(&format!(
                "/services/data/{}/query",
                settings.api_version.trim()
            ))
            .context("Failed to build Salesforce's query URL")?;
        let api = Api::new(
            &instance,
            client_id.trim().to_owned(),
            secret.to_secret_string(),
            settings.request_timeout,
            retry,
            metrics.clone(),
        )?;
        Ok(Some(Self {
            api,
            instance,
            query_url,
            company: settings
                .company_field
                .as_deref()
                .map(str::trim)
                .unwrap_or(ACCOUNT_NAME)
                .to_owned(),
            owners: settings.owner_members.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Lister for SalesforceLister {
    fn source(&self) -> &'static str {
        "salesforce"
    }

    /// The query locator pages through any number of Contacts, so a window is never split.
    #[tracing::instrument(name = "salesforce.list", skip_all, fields(since = window.since, until = window.until))]
    async fn list_counting(
        &self,
        window: Window,
        sink: &mut dyn PageSink,
        stats: &mut ListStats,
    ) -> Result<(), ListError> {
        stats.windows = 1;
        let mut url = self.query_url.clone();
        url.query_pairs_mut()
            .append_pair("q", &query::soql(window, &self.company));
        loop {
            let body = self.api.get(&url, stats).await?;
            let batch = query::batch(&body)?;
            let page = batch
                .records
                .iter()
                .map(|record| query::listed(record, &self.company, &self.owners))
                .collect::<Result<Vec<_>, _>>()?;
            if !page.is_empty() {
                stats.pages += 1;
                sink.page(page).await.map_err(ListError::Sink)?;
            }
            let Some(next) = batch.next else { break };
            let next = query::next_url(&self.instance, &next)?;
            // A locator that names itself would page forever.
            if next == url {
                return Err(query::repeated_locator().into());
            }
            url = next;
        }
        tracing::info!(
            requests = stats.requests,
            pages = stats.pages,
            api_usage = self.api.usage().map(|u| u.to_string()),
            "Listed Salesforce Contacts"
        );
        Ok(())
    }
}
