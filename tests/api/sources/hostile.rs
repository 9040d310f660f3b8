//! The same rules on every CRM source: a contact with an address Tallyfy refuses is a rejected
//! item (or, fetched from HubSpot, a failed row), repeated keys and oversized batches refuse the
//! request, and an encoding problem is never reported as failed authentication.

use serde_json::{Value, json};

use super::{
    Bridge, SALESFORCE_ORG_18, SALESFORCE_TOKEN, crm_env, hubspot, item_statuses, pipedrive,
    salesforce, spawn_crm_app,
};
use crate::helpers::error_of;
use crate::hostile_input::{GZIP, LATIN1, post_bytes};

const REFUSED: [&str; 3] = [
    "Name <a@example.com>",
    "\"quoted local\"@example.com",
    "a@[192.0.2.1]",
];

#[tokio::test]
async fn a_pipedrive_person_with_a_refused_address_is_a_rejected_item() {
    let (app, _crm) = spawn_crm_app().await;
    for (i, email) in REFUSED.into_iter().enumerate() {
        let items =
            pipedrive::post_person(&app, &pipedrive::v1_added_person(i as u64 + 1, email)).await;
        assert_eq!(items[0]["status"], "rejected", "{email}");
        assert_eq!(
            (&items[0]["field"], &items[0]["code"]),
            (&json!("current.email"), &json!("invalid_email"))
        );
    }
    let mut person = pipedrive::v1_added_person(9, "a@example.com");
    person["current"]["email"] = json!(vec![json!({"value": "a@example.com"}); 101]);
    let items = pipedrive::post_person(&app, &person).await;
    assert_eq!(
        (&items[0]["status"], &items[0]["code"], &items[0]["field"]),
        (
            &json!("rejected"),
            &json!("too_many"),
            &json!("current.email")
        )
    );
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_salesforce_contact_with_a_refused_address_is_acknowledged_and_not_stored() {
    let (app, _crm) = spawn_crm_app().await;
    let contacts: Vec<String> = REFUSED
        .iter()
        .enumerate()
        .map(|(i, email)| {
            let escaped = email
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            salesforce::contact(&format!("04l{i}"), &escaped)
        })
        .collect();
    let response = salesforce::post(&app, &salesforce::message(SALESFORCE_ORG_18, &contacts)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_hubspot_contact_fetched_with_a_refused_address_ends_failed_saying_why() {
    let (env, crm) = crm_env().await;
    crm.add_contact(
        "41",
        json!({"email": "Name <a@example.com>", "firstname": "A"}),
    );
    let items =
        item_statuses(hubspot::post_signed(&env.app, &json!([hubspot::creation(41)])).await).await;
    env.catch_up();
    env.drain().await;
    let row = env.row(items[0]["id"].as_i64().expect("id")).await;
    assert_eq!(row.state, "failed");
    let error = row.last_error.expect("reason");
    assert!(error.contains("plain address"), "{error}");
    assert_eq!(env.posts(), 0);
}

#[tokio::test]
async fn repeated_keys_and_oversized_batches_refuse_the_whole_request() {
    let (app, _crm) = spawn_crm_app().await;
    let person = pipedrive::v1_added_person(1, "a@example.com").to_string();
    let repeated = person.replacen("\"meta\":{", "\"meta\":{\"id\":2,", 1);
    let response = app
        .post_source("pipedrive", &pipedrive::auth(), repeated)
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, &error["code"], &error["field"]),
        (422, &json!("duplicate_key"), &json!("meta.id"))
    );

    let body =
        r#"[{"subscriptionType":"contact.creation","portalId":1,"objectId":2,"objectId":3}]"#;
    let (status, error) = error_of(hubspot::post_raw(&app, body).await).await;
    assert_eq!(
        (status, &error["code"], &error["field"]),
        (422, &json!("duplicate_key"), &json!("[0].objectId"))
    );

    let batch: Vec<Value> = (1..=101).map(hubspot::creation).collect();
    let (status, error) = error_of(hubspot::post_signed(&app, &json!(batch)).await).await;
    assert_eq!((status, &error["code"]), (422, &json!("too_many")));
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn encoding_problems_on_crm_sources_are_not_authentication_failures() {
    let (app, _crm) = spawn_crm_app().await;
    let url = |source: &str| match source {
        "salesforce" => format!("{}/webhooks/salesforce/{SALESFORCE_TOKEN}", app.address()),
        _ => format!("{}/webhooks/{source}", app.address()),
    };
    let json_type = ("content-type", "application/json".to_owned());
    let xml_type = ("content-type", "text/xml; charset=utf-8".to_owned());
    let gzip = ("content-encoding", "gzip".to_owned());
    for (source, content_type) in [
        ("pipedrive", &json_type),
        ("hubspot", &json_type),
        ("salesforce", &xml_type),
    ] {
        let compressed = [content_type.clone(), gzip.clone()];
        let response = post_bytes(app.client(), &url(source), &compressed, GZIP).await;
        assert_eq!(response.status().as_u16(), 415, "{source}");
        let latin1 = post_bytes(
            app.client(),
            &url(source),
            std::slice::from_ref(content_type),
            LATIN1,
        )
        .await;
        assert_eq!(latin1.status().as_u16(), 400, "{source}");
        let body = latin1.text().await.expect("body");
        assert!(body.contains("UTF-8"), "{source}: {body}");
    }
    // With Pipedrive's credentials too: the encoding is what is wrong.
    let mut headers = pipedrive::auth();
    headers.push(gzip);
    let (status, error) =
        error_of(post_bytes(app.client(), &url("pipedrive"), &headers, GZIP).await).await;
    assert_eq!(
        (status, &error["code"]),
        (415, &json!("unsupported_encoding"))
    );
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn crm_names_with_control_characters_are_left_out_and_the_contact_kept() {
    // Arrange: a v1 person with a NUL in the first name; a v2 person whose organisation, read
    // from Pipedrive by the worker, has an escape in its name.
    let (env, crm) = crm_env().await;
    let mut v1 = pipedrive::v1_added_person(4714, "ctl.one@example.com");
    v1["current"]["first_name"] = json!("Gr\u{0}ace");
    crm.add_org("43", "Navy\u{1b}[2JLabs");
    let v2 = json!({
        "meta": {"action": "create", "entity": "person", "company_id": "7654321",
                 "entity_id": "4715", "id": "9e2c4d1a-5b7f-4c3e-8a6d-1f0e2b3c4d5f",
                 "version": "2.0"},
        "data": {"id": 4715, "first_name": "Grace",
                 "emails": [{"value": "ctl.two@example.com", "primary": true}], "org_id": 43}});

    // Act
    let first = pipedrive::post_person(&env.app, &v1).await;
    let second = pipedrive::post_person(&env.app, &v2).await;
    env.catch_up();
    env.drain().await;

    // Assert: both delivered, without the fields that carried control characters.
    assert_eq!(
        (&first[0]["status"], &first[0]["left_out"]),
        (&json!("queued"), &json!(["first_name"]))
    );
    assert_eq!(second[0]["status"], "queued");
    let mut guests = env.sandbox.guests();
    guests.sort_by(|a, b| a.email.cmp(&b.email));
    assert_eq!(guests.len(), 2);
    assert_eq!(guests[0].first_name, None);
    assert_eq!(guests[1].company_name, None);
    assert_eq!(guests[1].first_name.as_deref(), Some("Grace"));
}
