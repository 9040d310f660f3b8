//! HubSpot reconcile and connect against the fake HubSpot over loopback: the contact search pages,
//! splits a window under the result cap, keeps its pace and waits out 429s; `connect` creates,
//! reuses and reactivates the app's subscriptions; an email added later reaches a refused contact;
//! reconcile runs through the engine queue each contact once.

mod connect;
mod engine;
mod listing;
mod worker;

use crate::reconcile::Pages;
use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_bridge::configuration::HubSpotSettings;
use tallyfy_bridge::crm::FetchError;
use tallyfy_bridge::crm::hubspot::reconcile::{lister, subscriptions};
use tallyfy_bridge::crm::hubspot::search::{ContactSearch, SearchLimits};
use tallyfy_bridge::crm::listing::{
    Connected, ListError, Listed, ListedContact, SubscriptionState, Window,
};
use tallyfy_bridge::domain::event::StoredEvent;
use tallyfy_bridge::metrics::Metrics;

use super::fake_hubspot::{APP_ID, DEVELOPER_KEY, FakeHubSpot, TOKEN};
use crate::helpers::{Overrides, test_settings_with};
use crate::sources::{HUBSPOT_SECRET, HUBSPOT_URL, crm_env_with, hubspot, item_statuses};

/// 2026-12-01T00:00:00Z: contacts of a test are created from here on.
const DAY: i64 = 1_796_083_200_000;

/// HubSpot's webhook, API (with a short search pace) and app keys, all on `fake`, as
/// `BRIDGE__…` variables.
pub fn hubspot_env(fake: &FakeHubSpot) -> Vec<(&'static str, String)> {
    vec![
        (
            "BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET",
            HUBSPOT_SECRET.into(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL", HUBSPOT_URL.into()),
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", TOKEN.into()),
        (
            "BRIDGE__SOURCES__HUBSPOT__API_BASE_URL",
            fake.base_url.clone(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__SEARCH_INTERVAL_MS", "1".into()),
        ("BRIDGE__SOURCES__HUBSPOT__APP_ID", APP_ID.to_string()),
        (
            "BRIDGE__SOURCES__HUBSPOT__DEVELOPER_API_KEY",
            DEVELOPER_KEY.into(),
        ),
    ]
}

/// HubSpot settings pointing at `fake`, through the same validation `serve` runs.
fn settings(fake: &FakeHubSpot, overrides: Overrides) -> HubSpotSettings {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = hubspot_env(fake);
    env.extend(overrides.iter().cloned());
    test_settings_with(dir.path(), &env).sources.hubspot
}

/// The limits HubSpot documents, with a short pace and `cap`.
fn limits(cap: u64) -> SearchLimits {
    SearchLimits {
        cap,
        interval: Duration::from_millis(1),
        max_wait: Duration::from_secs(2),
        ..SearchLimits::hubspot(Duration::from_millis(1))
    }
}

/// `n` contacts with emails, ids from `first`, one a second from `DAY`.
fn add_contacts(fake: &FakeHubSpot, first: u64, n: u64) {
    for i in 0..n {
        let id = first + i;
        fake.add(
            id,
            DAY + (i as i64) * 1000,
            json!({"email": format!("c{id}@example.com"), "firstname": "C"}),
        );
    }
}

fn whole_day() -> Window {
    Window {
        since: DAY,
        until: DAY + 86_400_000,
    }
}

/// A `contact.propertyChange` of `email` for `id`, as HubSpot's webhooks guide shows one.
fn email_change(id: u64, email: &str, occurred_at: u64) -> Value {
    json!({"eventId": 3_000_000_000u64 + id, "subscriptionId": 2400002, "portalId": 62515,
           "appId": APP_ID, "occurredAt": occurred_at, "subscriptionType": "contact.propertyChange",
           "attemptNumber": 0, "objectId": id, "propertyName": "email", "propertyValue": email,
           "changeSource": "CRM_UI", "sourceId": "userId:777"})
}

/// The bridge with its HubSpot API on `fake` (owner 801 is member 12), delivering to a sandbox.
async fn bridge_on(fake: &FakeHubSpot) -> crate::delivery::DeliveryEnv {
    let (env, _other_crms) = crm_env_with(&[
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", TOKEN.into()),
        (
            "BRIDGE__SOURCES__HUBSPOT__API_BASE_URL",
            fake.base_url.clone(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__OWNER_MEMBERS__801", "12".into()),
    ])
    .await;
    env
}

/// The guest as the sandbox's Tallyfy API shows it (what the bridge's create request set).
async fn sandbox_guest(env: &crate::delivery::DeliveryEnv, email: &str) -> Value {
    let config = tallyfy_sandbox::SandboxConfig::default();
    let url = format!(
        "{}/api/organizations/{}/guests/{email}",
        env.sandbox.base_url(),
        config.org_id
    );
    let answer: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(&config.token)
        .header("X-Tallyfy-Client", "APIClient")
        .header("Accept", "application/json")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(answer["data"].is_object(), "{answer}");
    answer["data"].clone()
}
