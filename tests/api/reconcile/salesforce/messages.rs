//! Salesforce's outbound messages as the other half of reconcile: a Contact refused without an
//! email is queued once an edit sends its email, once only; its owner becomes the member.

use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use super::{MEMBER, OWNER};
use crate::sources::salesforce::{answer, message, post};
use crate::sources::{SALESFORCE_ORG_18, crm_env_with};

/// A Contact notification: its own notification id, the Contact's Id, and the fields given.
pub(super) fn notification(
    notification_id: &str,
    contact_id: &str,
    fields: &[(&str, &str)],
) -> String {
    let fields: String = fields
        .iter()
        .map(|(name, value)| format!("<sf:{name}>{value}</sf:{name}>"))
        .collect();
    format!(
        r#"<Notification><Id>{notification_id}</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{contact_id}</sf:Id>{fields}
    </sObject></Notification>"#
    )
}

pub(super) async fn refused_rows(db: &sqlx::AnyPool) -> Vec<(String, Option<i64>)> {
    sqlx::query_as("SELECT record_id, resolved_outbox_id FROM refused ORDER BY id")
        .fetch_all(db)
        .await
        .expect("refused rows")
}

#[tokio::test]
async fn a_contact_refused_without_an_email_becomes_a_guest_when_an_edit_sets_it() {
    // Arrange
    let (env, _crm) = crm_env_with(&[]).await;
    let contact = "003Hn00000LaterAAA";
    let send = |id: &'static str, fields: &'static [(&'static str, &'static str)]| {
        message(SALESFORCE_ORG_18, &[notification(id, contact, fields)])
    };

    // Act 1: created without an email.
    let created = send("04l5e00000N0001AAA", &[("FirstName", "Ada")]);
    assert_eq!(answer(post(&env.app, &created).await).await, (200, Ok(())));

    // Assert 1: refused and kept, nothing queued.
    assert_eq!(env.app.outbox_rows().await, 0);
    let refused = refused_rows(&env.db).await;
    assert_eq!(refused, [(contact.to_owned(), None)]);

    // Act 2: the edit that sets the Email sends the whole Contact again.
    let edited = send(
        "04l5e00000N0002AAA",
        &[("FirstName", "Ada"), ("Email", "ada.later@example.com")],
    );
    assert_eq!(answer(post(&env.app, &edited).await).await, (200, Ok(())));
    env.catch_up();
    env.drain().await;

    // Assert 2: one guest, and the refusal resolved by its row.
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].email, "ada.later@example.com");
    let refused = refused_rows(&env.db).await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.is_some(), "{refused:?}");

    // Act 3: a later edit of the delivered Contact (a new notification id).
    let again = send(
        "04l5e00000N0003AAA",
        &[("FirstName", "Augusta"), ("Email", "ada.later@example.com")],
    );
    assert_eq!(answer(post(&env.app, &again).await).await, (200, Ok(())));
    env.catch_up();
    env.drain().await;

    // Assert 3: nothing new.
    assert_eq!(env.app.outbox_rows().await, 1);
    assert_eq!(env.posts(), 1);
    assert_eq!(env.sandbox.guests().len(), 1);
}

/// The guest as the sandbox's Tallyfy API returns it.
pub(super) async fn sandbox_guest(env: &crate::delivery::DeliveryEnv, email: &str) -> Value {
    let config = SandboxConfig::default();
    let url = format!(
        "{}/organizations/{}/guests/{email}",
        env.sandbox.base_url(),
        config.org_id
    );
    let response = env
        .app
        .client
        .get(url)
        .bearer_auth(&config.token)
        .header("accept", "application/json")
        .header("x-tallyfy-client", "APIClient")
        .send()
        .await
        .expect("sandbox answers");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_contacts_owner_becomes_the_guests_associated_member_in_tallyfy() {
    // Arrange: the owner set from the environment (which lowercases keys).
    let member = (
        "BRIDGE__SOURCES__SALESFORCE__OWNER_MEMBERS__005HN00000ABCDEIAH",
        MEMBER.to_string(),
    );
    let (env, _crm) = crm_env_with(&[member]).await;
    let owned = notification(
        "04l5e00000N0010AAA",
        "003Hn00000OwnedAAA",
        &[("Email", "owned@example.com"), ("OwnerId", OWNER)],
    );
    let unowned = notification(
        "04l5e00000N0011AAA",
        "003Hn00000OtherAAA",
        &[
            ("Email", "other@example.com"),
            ("OwnerId", "005Hn00000ZZZzzIAH"),
        ],
    );

    // Act
    let xml = message(SALESFORCE_ORG_18, &[owned, unowned]);
    assert_eq!(answer(post(&env.app, &xml).await).await, (200, Ok(())));
    env.catch_up();
    env.drain().await;

    // Assert: the create request carried the member; an unlisted owner, none.
    let owned = sandbox_guest(&env, "owned@example.com").await;
    assert_eq!(
        owned["data"]["details"]["associated_members"],
        json!([MEMBER])
    );
    let other = sandbox_guest(&env, "other@example.com").await;
    assert_eq!(other["data"]["details"]["associated_members"], json!(null));
}
