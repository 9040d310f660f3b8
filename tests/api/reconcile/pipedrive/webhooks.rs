//! The webhook adapter's part of issue 16, end to end against the sandbox: email later (an
//! update bringing a refused person's email) and owners mapped to Tallyfy members.

use serde_json::{Value, json};

/// A v1 `updated.person` of person `id`, now with `email` (None: still without).
pub fn v1_updated_person(id: u64, email: Option<&str>) -> Value {
    let mut body = crate::sources::pipedrive::v1_added_person(id, "x@example.com");
    body["event"] = json!("updated.person");
    body["meta"]["action"] = json!("updated");
    let emails: Vec<Value> = email
        .map(|e| json!({"label": "work", "value": e, "primary": true}))
        .into_iter()
        .collect();
    body["previous"] = json!({"email": [{"label": "work", "value": "", "primary": true}]});
    body["current"]["email"] = json!(emails);
    body
}

#[tokio::test]
async fn a_person_refused_for_want_of_email_becomes_a_guest_when_an_update_brings_one() {
    use crate::sources::pipedrive::{post_person, v1_added_person};
    // Arrange: a person created without email is refused.
    let (env, _crm) = crate::sources::crm_env().await;
    let mut created = v1_added_person(501, "x@example.com");
    created["current"]["email"] = json!([]);
    let items = post_person(&env.app, &created).await;
    assert_eq!(items[0]["status"], "rejected");

    // Act: the update that adds the email, then a later one.
    let update = post_person(&env.app, &v1_updated_person(501, Some("Late@Example.com"))).await;
    env.catch_up();
    env.drain().await;
    let later = post_person(&env.app, &v1_updated_person(501, Some("other@example.com"))).await;
    let still_none = post_person(&env.app, &v1_updated_person(502, Some("n@example.com"))).await;

    // Assert: one guest from the first update; a later update is the row already queued for
    // the person, and an update of a person never refused is ignored.
    assert_eq!(update[0]["status"], "queued", "{update:?}");
    assert_eq!(later[0]["status"], "duplicate", "{later:?}");
    assert_eq!(later[0]["id"], update[0]["id"]);
    assert_eq!(still_none[0]["status"], "ignored", "{still_none:?}");
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].email, "late@example.com");
    assert_eq!(env.app.outbox_rows().await, 1);
    let resolved: Option<i64> =
        sqlx::query_scalar("SELECT resolved_outbox_id FROM refused WHERE record_id = '501'")
            .fetch_one(&env.db)
            .await
            .expect("the refusal");
    assert_eq!(resolved, update[0]["id"].as_i64());
}

#[tokio::test]
async fn a_mapped_owner_is_sent_to_tallyfy_as_the_guests_associated_member() {
    use crate::sources::pipedrive::{post_person, v1_added_person};
    // Arrange
    let owners = [(
        "BRIDGE__SOURCES__PIPEDRIVE__OWNER_MEMBERS__1234567",
        "678".to_owned(),
    )];
    let (env, _crm) = crate::sources::crm_env_with(&owners).await;
    let mut person = v1_added_person(601, "owned@example.com");
    person["current"]["owner_id"] = json!(1234567);
    let mut other = v1_added_person(602, "unowned@example.com");
    other["current"]["owner_id"] = json!(99);

    // Act
    post_person(&env.app, &person).await;
    post_person(&env.app, &other).await;
    env.catch_up();
    env.drain().await;

    // Assert: Tallyfy's copy of each guest, as the create request gave it.
    assert_eq!(
        sandbox_members(&env, "owned@example.com").await,
        json!([678])
    );
    assert_eq!(
        sandbox_members(&env, "unowned@example.com").await,
        Value::Null
    );
}

/// `details.associated_members` of the sandbox's guest `email`, read from its guest API.
async fn sandbox_members(env: &crate::delivery::DeliveryEnv, email: &str) -> Value {
    let url = format!(
        "{}/api/organizations/demo-org/guests/{email}",
        env.sandbox.base_url()
    );
    let guest: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth("sandbox-token")
        .header("x-tallyfy-client", "APIClient")
        .header("accept", "application/json")
        .send()
        .await
        .expect("sandbox answers")
        .json()
        .await
        .expect("json");
    guest["data"]["details"]["associated_members"].clone()
}
