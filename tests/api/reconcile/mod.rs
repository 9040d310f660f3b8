//! Reconcile and connect against fakes of each CRM's API: what the CRM created is queued once,
//! whether it came by webhook, by reconcile or both.

mod endpoint;
mod fake_hubspot;
mod fake_pipedrive;
pub mod fake_salesforce;
pub mod hubspot;
mod pipedrive;
mod salesforce;
mod schedule;

use serde_json::Value;
use tallyfy_bridge::crm::listing::{Listed, PageSink};
use tallyfy_sandbox::SandboxConfig;

pub use crate::admin::TOKEN as ADMIN_TOKEN;
use crate::delivery::DeliveryEnv;
use crate::helpers::{Overrides, TestApp, spawn_app_with};

/// `POST /reconcile/{source}` with the admin token: status and JSON answer.
pub async fn reconcile(app: &TestApp, source: &str, body: Value) -> (u16, Value) {
    crate::admin::post_json(app, &format!("/reconcile/{source}"), Some(body)).await
}

/// An app with the admin endpoints open and no delivery, with `overrides` (a CRM's API
/// settings pointing at its fake). Scheduled reconciles are off in tests unless an override
/// sets `reconcile_every_secs`.
pub async fn spawn_reconcile_app(overrides: Overrides<'_>) -> TestApp {
    let mut settings = vec![("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN.to_string())];
    settings.extend(overrides.iter().cloned());
    spawn_app_with(&settings).await
}

/// The sandbox and an app delivering to it (worker driven by the test), admin endpoints open.
pub async fn reconcile_env(config: SandboxConfig, overrides: Overrides<'_>) -> DeliveryEnv {
    crate::admin::admin_env(config, overrides).await
}

/// A sink that keeps each page a lister hands over, for tests of a lister alone.
#[derive(Default)]
pub struct Pages(pub Vec<Vec<Listed>>);

#[async_trait::async_trait]
impl PageSink for Pages {
    async fn page(&mut self, contacts: Vec<Listed>) -> anyhow::Result<()> {
        self.0.push(contacts);
        Ok(())
    }
}

impl Pages {
    /// The record ids listed, in order.
    pub fn ids(&self) -> Vec<String> {
        self.0
            .iter()
            .flatten()
            .map(|listed| listed.record_id.clone())
            .collect()
    }
}
