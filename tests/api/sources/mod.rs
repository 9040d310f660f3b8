//! CRM adapters as each CRM calls them: signed or authenticated requests in the vendor's own
//! format over loopback, then delivery against the sandbox (and a fake HubSpot API).

mod binary;
mod fake_crm;
mod hostile;
pub(crate) mod hubspot;
mod pipedrive;
mod salesforce;
mod salesforce_limits;

use base64::Engine;
use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use crate::delivery::{DeliveryEnv, delivery_env_with};
use crate::helpers::{Overrides, TestApp, error_of, spawn_app, spawn_app_with};
pub use fake_crm::{FakeCrm, HUBSPOT_TOKEN, PIPEDRIVE_TOKEN};

pub const PIPEDRIVE_USER: &str = "pipedrive-hook";
pub const PIPEDRIVE_PASSWORD: &str = "pd-basic-password-42";
pub const HUBSPOT_SECRET: &str = "hs-app-client-secret-42";
/// Public URL as entered in HubSpot; the signature covers it, wherever the bridge really runs.
pub const HUBSPOT_URL: &str = "https://bridge.example.com/webhooks/hubspot";
/// Configured in its 15-character form; messages carry the 18-character one.
pub const SALESFORCE_ORG: &str = "00D5e000000AbCd";
pub const SALESFORCE_ORG_18: &str = "00D5e000000AbCdEAF";
/// The last segment of the endpoint URL entered in Salesforce.
pub const SALESFORCE_TOKEN: &str = "9b2f7c4e1a8d3f6b0c5e2a9d7f4b1c8e3a6d0f5b2c9e7a4d";

/// The app with all three CRM sources configured, and the fake CRM APIs it reads from.
pub async fn spawn_crm_app() -> (TestApp, FakeCrm) {
    spawn_crm_app_with(&[]).await
}

/// The same, with `overrides` applied last.
pub async fn spawn_crm_app_with(overrides: Overrides<'_>) -> (TestApp, FakeCrm) {
    let crm = FakeCrm::start().await;
    let app = spawn_app_with(&crm_settings(&crm, overrides)).await;
    (app, crm)
}

/// The three sources, reading from `crm`, then `overrides`.
fn crm_settings<'a>(crm: &FakeCrm, overrides: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let api = crm.base_url.clone();
    let mut settings = vec![
        (
            "BRIDGE__SOURCES__PIPEDRIVE__USERNAME",
            PIPEDRIVE_USER.into(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            PIPEDRIVE_PASSWORD.into(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN",
            PIPEDRIVE_TOKEN.into(),
        ),
        ("BRIDGE__SOURCES__PIPEDRIVE__API_BASE_URL", api.clone()),
        (
            "BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET",
            HUBSPOT_SECRET.into(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL", HUBSPOT_URL.into()),
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", HUBSPOT_TOKEN.into()),
        ("BRIDGE__SOURCES__HUBSPOT__API_BASE_URL", api),
        (
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            SALESFORCE_ORG.into(),
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN.into(),
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__COMPANY_FIELD",
            "Account_Name__c".into(),
        ),
    ];
    settings.extend(overrides.iter().cloned());
    settings
}

/// The CRM app plus its worker and the sandbox, for end-to-end tests.
pub async fn crm_env() -> (DeliveryEnv, FakeCrm) {
    crm_env_with(&[]).await
}

/// The same, with `overrides` applied last.
pub async fn crm_env_with(overrides: Overrides<'_>) -> (DeliveryEnv, FakeCrm) {
    let crm = FakeCrm::start().await;
    let settings = crm_settings(&crm, overrides);
    (
        delivery_env_with(SandboxConfig::default(), &settings).await,
        crm,
    )
}

/// Where CRM requests go: the in-process app, or a bridge binary at an address.
pub trait Bridge {
    fn client(&self) -> &reqwest::Client;
    fn address(&self) -> &str;

    /// A POST to `/webhooks/{source}` with the given headers and body.
    fn post_source(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: impl Into<String>,
    ) -> impl Future<Output = reqwest::Response> {
        let mut request = self
            .client()
            .post(format!("{}/webhooks/{source}", self.address()));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(body.into());
        async move { request.send().await.expect("request sent") }
    }
}

impl Bridge for TestApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn address(&self) -> &str {
        &self.address
    }
}

/// A bridge running as its own process.
pub struct Remote {
    pub client: reqwest::Client,
    pub address: String,
}

impl Bridge for Remote {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn address(&self) -> &str {
        &self.address
    }
}

/// A successful adapter answer's per-item statuses.
pub async fn item_statuses(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON report");
    body["items"].as_array().expect("items").clone()
}

pub fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[tokio::test]
async fn a_source_that_is_not_configured_answers_404_and_stores_nothing() {
    let app = spawn_app().await;
    for source in ["pipedrive", "hubspot", "salesforce", "zoho"] {
        let response = app
            .post_source(source, &[("content-type", "application/json".into())], "{}")
            .await;
        let (status, error) = error_of(response).await;
        assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
        assert_eq!(
            error["message"],
            format!("no webhook source named \"{source}\" is configured")
        );
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_crm_only_deployment_can_turn_the_canonical_endpoint_off() {
    let (app, _crm) =
        spawn_crm_app_with(&[("BRIDGE__INGEST__AUTH__MODE", "disabled".into())]).await;
    let response = app.post_contact(json!({"email": "a@example.com"})).await;
    assert_eq!(response.status().as_u16(), 404);
    let items = pipedrive::post_person(&app, &pipedrive::v1_added_person(1, "a@example.com")).await;
    assert_eq!(items[0]["status"], "queued");
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn status_lists_the_webhook_paths_and_no_source_secret() {
    let (app, _crm) = spawn_crm_app().await;
    // A refused request of each kind, so anything it could log or keep has had its chance.
    app.post_source(
        "pipedrive",
        &[("authorization", basic(PIPEDRIVE_USER, "x"))],
        "{}",
    )
    .await;
    let wrong = format!("salesforce/{}", &SALESFORCE_TOKEN[1..]);
    app.post_source(&wrong, &[], "<x/>").await;
    let status = app.get("/status").await.text().await.expect("body");
    let parsed: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(
        parsed["webhooks"],
        json!([
            "/webhooks/contacts",
            "/webhooks/hubspot",
            "/webhooks/pipedrive",
            "/webhooks/salesforce/{token}"
        ])
    );
    for secret in [
        PIPEDRIVE_PASSWORD,
        PIPEDRIVE_TOKEN,
        HUBSPOT_SECRET,
        HUBSPOT_TOKEN,
        &SALESFORCE_TOKEN[1..],
    ] {
        assert!(!status.contains(secret), "{status}");
    }
}

#[tokio::test]
async fn a_get_on_a_source_gets_405() {
    let (app, _crm) = spawn_crm_app().await;
    let response = app.get("/webhooks/pipedrive").await;
    assert_eq!(response.status().as_u16(), 405);
}

#[tokio::test]
async fn one_person_arriving_from_every_crm_is_one_guest() {
    // Arrange: the same mailbox from Pipedrive, HubSpot, Salesforce and the canonical format.
    let (env, crm) = crm_env().await;
    crm.add_contact("77", json!({"email": "Same.Person@example.com"}));
    let person = pipedrive::v1_added_person(1, "same.person@example.com");
    let items = pipedrive::post_person(&env.app, &person).await;
    assert_eq!(items[0]["status"], "queued");
    let response = hubspot::post_signed(&env.app, &json!([hubspot::creation(77)])).await;
    assert_eq!(response.status().as_u16(), 200);
    let response = salesforce::post(
        &env.app,
        &salesforce::message(
            SALESFORCE_ORG_18,
            &[salesforce::contact("04l1", "SAME.person@example.com")],
        ),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    env.post(json!({"email": "same.person@example.com"})).await;

    // Act
    env.drain().await;

    // Assert: one create; every row delivered with that guest's id.
    assert_eq!(env.posts(), 1);
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    let states: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT state, guest_id FROM outbox ORDER BY id")
            .fetch_all(&env.db)
            .await
            .expect("rows");
    assert_eq!(states.len(), 4);
    for (state, guest_id) in states {
        assert_eq!(state, "delivered");
        assert_eq!(guest_id.as_deref(), Some(guests[0].id.as_str()));
    }
}

#[tokio::test]
async fn hostile_bodies_get_an_answer_below_500_and_store_nothing() {
    let (app, _crm) = spawn_crm_app().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies = [
        "",
        "null",
        "[]",
        "{}",
        "[1,\"x\",null,{}]",
        r#"{"meta":[],"current":7}"#,
        r#"{"event":"added.person","meta":{"company_id":1e400,"id":-1},"current":{"email":{}}}"#,
        r#"[{"subscriptionType":"contact.creation","portalId":-1,"objectId":1.5}]"#,
        "<a/>",
        "\u{0}\u{1}\u{2}",
        deep.as_str(),
    ];
    for body in bodies {
        let answers = [
            app.post_source("pipedrive", &pipedrive::auth(), body).await,
            hubspot::post_raw(&app, body).await,
            salesforce::post(&app, body).await,
        ];
        for answer in answers {
            assert!(answer.status().as_u16() < 500, "{body:.40}: {answer:?}");
        }
    }
    assert_eq!(app.outbox_rows().await, 0);
}
