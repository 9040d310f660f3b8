//! Salesforce Outbound Messages: SOAP envelopes of Contact notifications, acknowledged with
//! `<Ack>true</Ack>` only once all are committed, answered with a SOAP fault otherwise.

use super::{
    Bridge, SALESFORCE_ORG_18, SALESFORCE_TOKEN, crm_env, spawn_crm_app, spawn_crm_app_with,
};
use crate::durability::hold_write_lock;

/// A Contact notification with `id`, `email` and the configured account-name field.
pub fn contact(id: &str, email: &str) -> String {
    format!(
        r#"<Notification><Id>{id}</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>003{id}</sf:Id><sf:Email>{email}</sf:Email><sf:FirstName>Ada</sf:FirstName>
     <sf:LastName>Lovelace</sf:LastName><sf:Phone>+44 20 7946 0000</sf:Phone>
     <sf:Account_Name__c>Analytical Engines</sf:Account_Name__c>
    </sObject></Notification>"#
    )
}

/// The outbound message envelope around `notifications`, as Salesforce's WSDL defines it.
pub fn message(org: &str, notifications: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5e000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00D5e000000AbCd</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00D5e000000AbCd</PartnerUrl>
   {}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#,
        notifications.concat()
    )
}

/// A POST to the endpoint URL as entered in Salesforce, token included.
pub async fn post(app: &impl Bridge, xml: &str) -> reqwest::Response {
    post_to(app, &format!("salesforce/{SALESFORCE_TOKEN}"), xml).await
}

/// A POST of an XML body to `/webhooks/{path}`.
pub async fn post_to(app: &impl Bridge, path: &str, xml: &str) -> reqwest::Response {
    app.post_source(
        path,
        &[("content-type", "text/xml; charset=utf-8".into())],
        xml.to_owned(),
    )
    .await
}

/// Status, and whether the body is the SOAP acknowledgement (else the fault's text).
pub async fn answer(response: reqwest::Response) -> (u16, Result<(), String>) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    let body = response.text().await.expect("body");
    if body.contains("<Ack>true</Ack>") {
        (status, Ok(()))
    } else {
        assert!(body.contains("<soapenv:Fault>"), "{body}");
        (status, Err(body))
    }
}

#[tokio::test]
async fn a_message_with_two_contacts_is_acknowledged_and_both_become_guests() {
    // Arrange
    let (env, _crm) = crm_env().await;
    let xml = message(
        SALESFORCE_ORG_18,
        &[
            contact("04l5e00000Q1w2eAAB", "Ada.Lovelace@example.com"),
            contact("04l5e00000Q1w2fAAB", "charles.babbage@example.com"),
        ],
    );

    // Act
    let (status, ack) = answer(post(&env.app, &xml).await).await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!((status, ack), (200, Ok(())));
    let mut guests = env.sandbox.guests();
    guests.sort_by(|a, b| a.email.cmp(&b.email));
    let emails: Vec<&str> = guests.iter().map(|g| g.email.as_str()).collect();
    assert_eq!(
        emails,
        ["ada.lovelace@example.com", "charles.babbage@example.com"]
    );
    assert_eq!(
        guests[0].company_name.as_deref(),
        Some("Analytical Engines")
    );
    assert_eq!(guests[0].phone_1.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(env.posts(), 2);
}

#[tokio::test]
async fn a_message_from_another_org_or_without_one_gets_a_fault_and_stores_nothing() {
    let (app, _crm) = spawn_crm_app().await;
    let notification = [contact("04l1", "a@example.com")];
    let (status, fault) =
        answer(post(&app, &message("00D000000000001AAA", &notification)).await).await;
    assert_eq!(status, 401);
    assert!(fault.expect_err("fault").contains("soapenv:Client"));
    let no_org = message("", &notification);
    let (status, fault) = answer(post(&app, &no_org).await).await;
    assert_eq!(status, 422);
    assert!(fault.expect_err("fault").contains("OrganizationId"));
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn one_notification_without_an_email_does_not_stop_the_others() {
    // The acknowledgement covers the whole message; a resend would not fix the bad one.
    let (app, _crm) = spawn_crm_app().await;
    let no_email = contact("04l2", "").replace("<sf:Email></sf:Email>", "");
    let xml = message(
        SALESFORCE_ORG_18,
        &[contact("04l1", "good@example.com"), no_email],
    );
    let (status, ack) = answer(post(&app, &xml).await).await;
    assert_eq!((status, ack), (200, Ok(())));
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn salesforces_resend_of_a_message_stores_nothing_new() {
    let (app, _crm) = spawn_crm_app().await;
    let xml = message(
        SALESFORCE_ORG_18,
        &[
            contact("04l1", "a@example.com"),
            contact("04l2", "b@example.com"),
        ],
    );
    for _ in 0..2 {
        let (status, ack) = answer(post(&app, &xml).await).await;
        assert_eq!((status, ack), (200, Ok(())));
    }
    assert_eq!(app.outbox_rows().await, 2);
}

#[tokio::test]
async fn notifications_about_other_objects_are_acknowledged_and_ignored() {
    let (app, _crm) = spawn_crm_app().await;
    let lead = contact("04l9", "lead@example.com").replace("sf:Contact", "sf:Lead");
    let (status, ack) = answer(post(&app, &message(SALESFORCE_ORG_18, &[lead])).await).await;
    assert_eq!((status, ack), (200, Ok(())));
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn when_the_outbox_cannot_commit_the_answer_is_a_fault_not_an_ack() {
    let (app, _crm) =
        spawn_crm_app_with(|s| s.database.busy_timeout = std::time::Duration::from_millis(100))
            .await;
    let xml = message(SALESFORCE_ORG_18, &[contact("04l1", "locked@example.com")]);
    let lock = hold_write_lock(&app).await;
    let (status, fault) = answer(post(&app, &xml).await).await;
    assert_eq!(status, 500);
    assert!(fault.expect_err("fault").contains("soapenv:Server"));
    lock.release().await;
    assert_eq!(app.outbox_rows().await, 0);
    let (status, ack) = answer(post(&app, &xml).await).await;
    assert_eq!((status, ack), (200, Ok(())));
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn malformed_xml_and_doctypes_are_refused_with_a_client_fault() {
    let (app, _crm) = spawn_crm_app().await;
    let doctype = format!(
        r#"<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]>{}"#,
        message(SALESFORCE_ORG_18, &[contact("04l1", "&lol;@example.com")])
            .trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
    );
    for body in ["<soapenv:Envelope", doctype.as_str()] {
        let (status, fault) = answer(post(&app, body).await).await;
        assert_eq!(status, 400, "{body}");
        assert!(fault.expect_err("fault").contains("soapenv:Client"));
    }
    let json = app
        .post_source(
            &format!("salesforce/{SALESFORCE_TOKEN}"),
            &[("content-type", "application/json".into())],
            "{}",
        )
        .await;
    assert_eq!(json.status().as_u16(), 415);
    assert_eq!(app.outbox_rows().await, 0);
}
