//! HubSpot `contact.creation` webhooks: batched, signed with v3, carrying only the contact id;
//! the worker fetches the contact from the (fake) CRM API before creating the guest.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::{
    Bridge, HUBSPOT_SECRET, HUBSPOT_URL, crm_env, crm_env_with, item_statuses, spawn_crm_app,
};
use crate::helpers::error_of;

const PORTAL: u64 = 62515;

/// A `contact.creation` event for contact `id`, as HubSpot's webhooks guide shows it.
pub fn creation(id: u64) -> Value {
    json!({"eventId": 1_000_000_000u64 + id, "subscriptionId": 2400001, "portalId": PORTAL,
           "appId": 54321, "occurredAt": 1767225600000u64, "subscriptionType": "contact.creation",
           "attemptNumber": 0, "objectId": id, "changeFlag": "NEW", "changeSource": "CRM_UI",
           "sourceId": "userId:777"})
}

fn signature(secret: &str, body: &str, timestamp: i64) -> String {
    let message = format!("POST{HUBSPOT_URL}{body}{timestamp}");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256::HMAC::mac(message, secret))
}

fn headers(signature: String, timestamp: i64) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("x-hubspot-signature-v3", signature),
        ("x-hubspot-request-timestamp", timestamp.to_string()),
    ]
}

/// `events` signed now, as HubSpot sends them.
pub async fn post_signed(app: &impl Bridge, events: &Value) -> reqwest::Response {
    post_raw(app, &events.to_string()).await
}

/// Any `body`, signed now.
pub async fn post_raw(app: &impl Bridge, body: &str) -> reqwest::Response {
    let now = chrono::Utc::now().timestamp_millis();
    let headers = headers(signature(HUBSPOT_SECRET, body, now), now);
    app.post_source("hubspot", &headers, body).await
}

#[tokio::test]
async fn a_signed_batch_is_stored_then_each_contact_is_fetched_and_delivered() {
    // Arrange
    let (env, hubspot) = crm_env().await;
    hubspot.add_contact(
        "5012",
        json!({"email": "Ada@Example.com", "firstname": "Ada", "lastname": "Lovelace",
               "phone": "+44 20 7946 0000", "company": "Analytical Engines",
               "hs_object_id": "5012"}),
    );
    hubspot.add_contact(
        "5013",
        json!({"email": "charles@example.com", "firstname": "Charles", "lastname": null,
               "phone": null, "company": null}),
    );

    // Act
    let items =
        item_statuses(post_signed(&env.app, &json!([creation(5012), creation(5013)])).await).await;
    env.catch_up();
    env.drain().await;

    // Assert: stored as references, fetched once each with the token, delivered.
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["status"] == "queued"), "{items:?}");
    let fetches = hubspot.fetches();
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(
        fetches
            .iter()
            .all(|f| f.contains("properties=email,firstname,lastname,phone,company")),
        "{fetches:?}"
    );
    let mut guests = env.sandbox.guests();
    guests.sort_by(|a, b| a.email.cmp(&b.email));
    assert_eq!(guests.len(), 2);
    assert_eq!(guests[0].email, "ada@example.com");
    assert_eq!(guests[0].last_name.as_deref(), Some("Lovelace"));
    assert_eq!(guests[0].phone_1.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(
        guests[0].company_name.as_deref(),
        Some("Analytical Engines")
    );
    assert_eq!(guests[1].email, "charles@example.com");
    assert_eq!(guests[1].last_name, None);
    let id = items[0]["id"].as_i64().expect("id");
    let row = env.row(id).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(
        env.ledger("ada@example.com").await.as_deref(),
        Some(guests[0].id.as_str())
    );
    // One create each: the fetch was not a Tallyfy attempt, so no look-up came first either.
    assert_eq!((env.posts(), env.lookups()), (2, 0));
}

#[tokio::test]
async fn forged_missing_and_stale_signatures_get_401_and_store_nothing() {
    let (app, _crm) = spawn_crm_app().await;
    let body = json!([creation(1)]).to_string();
    let now = chrono::Utc::now().timestamp_millis();
    let six_minutes_ago = now - 6 * 60 * 1000;
    let mut tampered = body.clone();
    tampered.insert(1, ' ');
    for (headers, body) in [
        (
            headers(signature("not-the-secret", &body, now), now),
            body.clone(),
        ),
        (
            vec![("content-type", "application/json".into())],
            body.clone(),
        ),
        (
            headers(
                signature(HUBSPOT_SECRET, &body, six_minutes_ago),
                six_minutes_ago,
            ),
            body.clone(),
        ),
        (
            headers(signature(HUBSPOT_SECRET, &body, now), now),
            tampered,
        ),
    ] {
        let (status, error) = error_of(app.post_source("hubspot", &headers, body).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn one_bad_event_in_a_batch_does_not_fail_the_others() {
    let (app, _crm) = spawn_crm_app().await;
    let mut no_object = creation(2);
    no_object
        .as_object_mut()
        .expect("object")
        .remove("objectId");
    let mut property_change = creation(3);
    property_change["subscriptionType"] = json!("contact.propertyChange");
    let items =
        item_statuses(post_signed(&app, &json!([creation(1), no_object, property_change])).await)
            .await;
    let statuses: Vec<&str> = items.iter().filter_map(|i| i["status"].as_str()).collect();
    assert_eq!(statuses, ["queued", "rejected", "ignored"]);
    assert_eq!(items[1]["field"], "[1].objectId");
    assert_eq!(app.outbox_rows().await, 1);
    // The bad one is kept as refused; it names no contact.
    let db = app.db().await;
    let refused: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT field, reason, record_id FROM refused")
            .fetch_all(&db)
            .await
            .expect("refused");
    assert_eq!(
        refused,
        [("[1].objectId".into(), "missing_field".into(), None)]
    );
}

#[tokio::test]
async fn hubspots_resend_of_a_batch_is_deduplicated() {
    let (app, _crm) = spawn_crm_app().await;
    let first = item_statuses(post_signed(&app, &json!([creation(1), creation(2)])).await).await;
    let mut resent = json!([creation(1), creation(2)]);
    for event in resent.as_array_mut().expect("array") {
        event["attemptNumber"] = json!(1);
    }
    let again = item_statuses(post_signed(&app, &resent).await).await;
    assert!(
        again.iter().all(|i| i["status"] == "duplicate"),
        "{again:?}"
    );
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(app.outbox_rows().await, 2);
}

#[tokio::test]
async fn a_contact_without_an_email_ends_failed_with_that_reason() {
    let (env, hubspot) = crm_env().await;
    hubspot.add_contact(
        "9",
        json!({"email": null, "firstname": "No", "lastname": "Mail"}),
    );
    let items = item_statuses(post_signed(&env.app, &json!([creation(9)])).await).await;
    env.catch_up();
    env.drain().await;
    let row = env.row(items[0]["id"].as_i64().expect("id")).await;
    assert_eq!(row.state, "failed");
    let error = row.last_error.expect("reason");
    assert!(error.contains("no email"), "{error}");
    assert_eq!(env.posts(), 0);
}

#[tokio::test]
async fn a_contact_hubspot_cannot_show_yet_is_read_again_and_delivered_when_it_appears() {
    // Arrange: HubSpot's API lags behind its webhook: the first read answers 404.
    let (env, hubspot) = crm_env().await;
    let items = item_statuses(post_signed(&env.app, &json!([creation(77)])).await).await;
    let id = items[0]["id"].as_i64().expect("id");
    env.catch_up();
    env.drain().await;
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 1));

    // Act: the contact shows up before the retry, 30 s later.
    hubspot.add_contact("77", json!({"email": "late@example.com"}));
    env.advance(Duration::from_secs(29));
    assert!(
        env.worker.run_once().await.expect("run").is_empty(),
        "not yet due"
    );
    env.advance(Duration::from_secs(2));
    env.drain().await;

    // Assert
    let row = env.row(id).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(env.sandbox.create_count("late@example.com"), 1);
}

#[tokio::test]
async fn a_contact_still_missing_after_a_few_minutes_ends_failed() {
    let (env, crm) = crm_env().await;
    let items = item_statuses(post_signed(&env.app, &json!([creation(404)])).await).await;
    let id = items[0]["id"].as_i64().expect("id");
    env.catch_up();
    for wait in [0, 30, 60, 120] {
        env.advance(Duration::from_secs(wait));
        env.drain().await;
    }
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 4));
    let reason = row.last_error.expect("reason");
    assert!(
        reason.contains("404") && reason.contains("4 reads over 210 s"),
        "{reason}"
    );
    assert_eq!(crm.fetches().len(), 4);
    assert_eq!(env.posts(), 0);
}

#[tokio::test]
async fn hubspot_rate_limits_give_the_attempt_back_and_wait_for_the_window() {
    // Arrange
    let (env, hubspot) = crm_env().await;
    hubspot.add_contact("5", json!({"email": "patient@example.com"}));
    hubspot.rate_limit_next(1);
    let items = item_statuses(post_signed(&env.app, &json!([creation(5)])).await).await;
    let id = items[0]["id"].as_i64().expect("id");
    env.catch_up();

    // Act: the first fetch is refused with HubSpot's 10-second window.
    env.drain().await;

    // Assert: waiting, nothing used up, nothing failed; due once the window has passed.
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));
    env.advance(Duration::from_secs(9));
    assert_eq!(env.drain().await, 0);
    env.advance(Duration::from_secs(2));
    env.drain().await;
    assert_eq!(env.row(id).await.state, "delivered");
    assert_eq!(hubspot.fetches().len(), 2);
    assert_eq!(env.posts(), 1);
}

#[tokio::test]
async fn while_hubspot_holds_us_off_other_contacts_wait_without_calling_it() {
    // Arrange: one delivery at a time, so the second contact is claimed after the 429.
    let (env, hubspot) = crm_env_with(&[("BRIDGE__DELIVERY__CONCURRENCY", "1".into())]).await;
    hubspot.add_contact("1", json!({"email": "one@example.com"}));
    hubspot.add_contact("2", json!({"email": "two@example.com"}));
    hubspot.rate_limit_next(1);
    let items =
        item_statuses(post_signed(&env.app, &json!([creation(1), creation(2)])).await).await;
    env.catch_up();

    // Act
    env.drain().await;

    // Assert: one call only; both rows wait for the window with no attempt used.
    assert_eq!(hubspot.fetches().len(), 1);
    for item in &items {
        let row = env.row(item["id"].as_i64().expect("id")).await;
        assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));
    }
    env.advance(Duration::from_secs(11));
    env.drain().await;
    assert_eq!(env.sandbox.guests().len(), 2);
}

#[tokio::test]
async fn a_refused_hubspot_token_keeps_its_contacts_waiting_without_pausing_tallyfy() {
    // Arrange
    let (env, hubspot) = crm_env_with(&[(
        "BRIDGE__SOURCES__HUBSPOT__API_TOKEN",
        "expired-token".into(),
    )])
    .await;
    hubspot.add_contact("1", json!({"email": "one@example.com"}));
    let items = item_statuses(post_signed(&env.app, &json!([creation(1)])).await).await;
    env.post(json!({"email": "canonical@example.com"})).await;

    // Act
    env.drain().await;

    // Assert: the HubSpot row waits with its attempt given back; Tallyfy delivery goes on.
    let row = env.row(items[0]["id"].as_i64().expect("id")).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));
    assert!(row.last_error.expect("reason").contains("token"));
    let paused: Option<String> =
        sqlx::query_scalar("SELECT paused_reason FROM worker_state WHERE id = 1")
            .fetch_one(&env.db)
            .await
            .expect("worker state");
    assert_eq!(paused, None);
    assert_eq!(env.sandbox.guests().len(), 1);
}
