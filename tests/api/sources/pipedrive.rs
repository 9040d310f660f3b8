//! Pipedrive webhooks v1 (`added.person`) and v2 (`create.person`), with HTTP Basic auth as
//! Pipedrive sends it. Bodies follow Pipedrive's webhook guides (see docs/crm-webhooks.md).

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    Bridge, PIPEDRIVE_PASSWORD, PIPEDRIVE_USER, basic, crm_env, item_statuses, spawn_crm_app,
};
use crate::helpers::error_of;

pub fn auth() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("authorization", basic(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD)),
    ]
}

/// Posts a Pipedrive event with the right credentials; the per-item report.
pub async fn post_person(app: &impl Bridge, event: &Value) -> Vec<Value> {
    item_statuses(
        app.post_source("pipedrive", &auth(), event.to_string())
            .await,
    )
    .await
}

/// A v1 `added.person` for person `id` with a primary `email` (listed second).
pub fn v1_added_person(id: u64, email: &str) -> Value {
    json!({
        "v": 1, "event": "added.person", "retry": 0, "previous": null,
        "matches_filters": {"current": [], "previous": []},
        "meta": {"v": 1, "action": "added", "object": "person", "change_source": "app",
                 "id": id, "company_id": 7654321, "user_id": 1234567,
                 "host": "acme.pipedrive.com", "timestamp": 1767225600,
                 "permitted_user_ids": [1234567], "is_bulk_update": false, "webhook_id": 998877},
        "current": {
            "id": id, "name": "Grace Hopper", "first_name": "Grace", "last_name": "Hopper",
            "email": [{"label": "home", "value": "home@example.org", "primary": false},
                      {"label": "work", "value": email, "primary": true}],
            "phone": [{"label": "mobile", "value": "+1 415 555 0100", "primary": true}],
            "org_id": 42, "org_name": "Example Navy Labs",
            "add_time": "2026-01-01 00:00:00", "update_time": "2026-01-01 00:00:00"
        }
    })
}

fn v2_create_person(id: u64, email: &str) -> Value {
    json!({
        "meta": {"action": "create", "entity": "person", "company_id": "7654321",
                 "correlation_id": "0b6f3a52-9c1e-4d7e-a0f1-2d9b8c7e6a51",
                 "entity_id": id.to_string(), "id": "9e2c4d1a-5b7f-4c3e-8a6d-1f0e2b3c4d5e",
                 "is_bulk_edit": false, "timestamp": "2026-01-01T00:00:00.123Z",
                 "type": "general", "user_id": "1234567", "version": "2.0",
                 "webhook_id": "998877", "webhook_owner_id": "1234567",
                 "change_source": "api", "attempt": 1, "host": "acme.pipedrive.com"},
        "data": {"id": id, "name": "Grace Hopper", "first_name": "Grace", "last_name": "Hopper",
                 "emails": [{"label": "work", "value": email, "primary": "true"}],
                 "phones": [], "org_id": 42, "owner_id": 1234567, "custom_fields": {}},
        "previous": null
    })
}

#[tokio::test]
async fn a_v1_added_person_becomes_a_guest_with_its_primary_email_phone_and_company() {
    // Arrange
    let (env, _crm) = crm_env().await;

    // Act
    let items = post_person(&env.app, &v1_added_person(4711, "G.Hopper@Example.com")).await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!(items[0]["status"], "queued");
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    let guest = &guests[0];
    assert_eq!(guest.email, "g.hopper@example.com");
    assert_eq!(guest.first_name.as_deref(), Some("Grace"));
    assert_eq!(guest.last_name.as_deref(), Some("Hopper"));
    assert_eq!(guest.phone_1.as_deref(), Some("+1 415 555 0100"));
    assert_eq!(guest.company_name.as_deref(), Some("Example Navy Labs"));
    let id = items[0]["id"].as_i64().expect("id");
    assert_eq!(
        env.row(id).await.guest_id.as_deref(),
        Some(guest.id.as_str())
    );
}

#[tokio::test]
async fn a_v2_create_person_and_its_v1_twin_store_one_event() {
    let (app, _crm) = spawn_crm_app().await;
    let v2 = post_person(&app, &v2_create_person(4711, "grace@example.com")).await;
    let v1 = post_person(&app, &v1_added_person(4711, "grace@example.com")).await;
    assert_eq!(v2[0]["status"], "queued");
    assert_eq!(v1[0]["status"], "duplicate");
    assert_eq!(v1[0]["id"], v2[0]["id"]);
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn pipedrives_retry_of_an_event_is_acknowledged_as_a_duplicate() {
    let (app, _crm) = spawn_crm_app().await;
    let mut event = v1_added_person(9, "retry@example.com");
    let first = post_person(&app, &event).await;
    event["retry"] = json!(1);
    let again = post_person(&app, &event).await;
    assert_eq!(first[0]["status"], "queued");
    assert_eq!(again[0]["status"], "duplicate");
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn wrong_or_missing_basic_credentials_get_401_with_a_challenge_and_store_nothing() {
    let (app, _crm) = spawn_crm_app().await;
    let body = v1_added_person(1, "a@example.com").to_string();
    let json = ("content-type", "application/json".to_string());
    for headers in [
        vec![json.clone()],
        vec![
            json.clone(),
            ("authorization", basic(PIPEDRIVE_USER, "wrong")),
        ],
        vec![
            json.clone(),
            ("authorization", basic("someone", PIPEDRIVE_PASSWORD)),
        ],
        vec![
            json.clone(),
            ("authorization", format!("Bearer {PIPEDRIVE_PASSWORD}")),
        ],
    ] {
        let response = app.post_source("pipedrive", &headers, body.clone()).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"tallyfy-bridge\"")
        );
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn events_other_than_a_person_creation_are_acknowledged_and_ignored() {
    let (app, _crm) = spawn_crm_app().await;
    let mut updated = v1_added_person(1, "a@example.com");
    updated["event"] = json!("updated.person");
    updated["meta"]["action"] = json!("updated");
    let mut deal = v2_create_person(2, "b@example.com");
    deal["meta"]["entity"] = json!("deal");
    for body in [updated, deal] {
        let items = post_person(&app, &body).await;
        assert_eq!(items[0]["status"], "ignored", "{items:?}");
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_person_without_an_email_is_reported_and_not_stored() {
    // Pipedrive allows persons without email; refusing them with a 4xx would only get the
    // webhook banned, so they are acknowledged and named in the report.
    let (app, _crm) = spawn_crm_app().await;
    let mut person = v1_added_person(3, "x@example.com");
    person["current"]["email"] = json!([{"label": "work", "value": "", "primary": true}]);
    let items = post_person(&app, &person).await;
    assert_eq!(items[0]["status"], "rejected");
    assert_eq!(items[0]["field"], "current.email");
    assert_eq!(items[0]["code"], "missing_field");
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_a_pipedrive_webhook_gets_a_clear_4xx() {
    let (app, _crm) = spawn_crm_app().await;
    let (status, error) = error_of(
        app.post_source("pipedrive", &auth(), r#"{"current":{}}"#)
            .await,
    )
    .await;
    assert_eq!((status, error["field"].as_str()), (422, Some("meta")));
    let (status, error) = error_of(app.post_source("pipedrive", &auth(), "{").await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("malformed_json"))
    );
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_v2_person_gets_its_organisations_name_read_from_pipedrive_as_company() {
    // Arrange: v2 names the organisation by id only.
    let (env, crm) = crm_env().await;
    crm.add_org("42", "Example Navy Labs");
    let person = v2_create_person(4711, "grace@example.com");

    // Act
    let items = post_person(&env.app, &person).await;
    env.catch_up();
    env.drain().await;

    // Assert: one read with the token, then one create with the company.
    assert_eq!(items[0]["status"], "queued");
    assert_eq!(crm.fetches(), ["42?"]);
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].company_name.as_deref(), Some("Example Navy Labs"));
    assert_eq!((env.posts(), env.lookups()), (1, 0));
}

#[tokio::test]
async fn a_deleted_organisation_leaves_the_guest_without_a_company() {
    let (env, crm) = crm_env().await;
    let person = v2_create_person(4712, "orphan@example.com");
    let items = post_person(&env.app, &person).await;
    env.catch_up();
    env.drain().await;
    let row = env.row(items[0]["id"].as_i64().expect("id")).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(env.sandbox.guests()[0].company_name, None);
    assert_eq!(crm.fetches().len(), 1);
}

#[tokio::test]
async fn a_pipedrive_rate_limit_gives_the_attempt_back_and_waits_for_its_reset() {
    // Arrange
    let (env, crm) = crm_env().await;
    crm.add_org("42", "Example Navy Labs");
    crm.rate_limit_next(1);
    let person = v2_create_person(4713, "patient@example.com");
    let items = post_person(&env.app, &person).await;
    let id = items[0]["id"].as_i64().expect("id");
    env.catch_up();

    // Act: refused with `x-ratelimit-reset: 2`.
    env.drain().await;

    // Assert: waiting with nothing used; after the reset, delivered with the company.
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));
    assert!(
        row.last_error
            .expect("reason")
            .starts_with("Pipedrive: rate limited")
    );
    env.advance(Duration::from_secs(1));
    assert_eq!(env.drain().await, 0);
    env.advance(Duration::from_secs(2));
    env.drain().await;
    assert_eq!(env.row(id).await.state, "delivered");
    assert_eq!(
        env.sandbox.guests()[0].company_name.as_deref(),
        Some("Example Navy Labs")
    );
}
