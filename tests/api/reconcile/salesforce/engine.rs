//! Salesforce through the reconcile engine (`POST /reconcile/salesforce`) and the worker: each
//! lost notification becomes one guest, a run after it none, and a Contact that came both ways
//! (or refused, then listed with its email) is one guest.

use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use super::messages::{notification, refused_rows, sandbox_guest};
use super::{MEMBER, OWNER, api_keys};
use crate::delivery::DeliveryEnv;
use crate::reconcile::{fake_salesforce::FakeSalesforce, reconcile, reconcile_env};
use crate::sources::salesforce::{answer, message, post};
use crate::sources::{SALESFORCE_ORG, SALESFORCE_ORG_18, SALESFORCE_TOKEN};

/// The fake org, and the bridge with its outbound messages and its API pointing at it.
async fn env_with(extra: &[(&'static str, String)]) -> (DeliveryEnv, FakeSalesforce) {
    let org = FakeSalesforce::start().await;
    let mut settings = vec![
        (
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            SALESFORCE_ORG.to_string(),
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN.into(),
        ),
    ];
    settings.extend(extra.iter().cloned());
    let env = reconcile_env(SandboxConfig::default(), &api_keys(&org, &settings)).await;
    (env, org)
}

/// `minutes` ago, as Salesforce stamps `CreatedDate`.
fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// A run over the last day.
async fn run(env: &DeliveryEnv, dry_run: bool) -> Value {
    let (status, report) = reconcile(
        &env.app,
        "salesforce",
        json!({"days": 1, "dry_run": dry_run}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

fn counts(report: &Value) -> [u64; 4] {
    ["listed", "queued", "already", "refused"].map(|k| report[k].as_u64().unwrap_or(u64::MAX))
}

#[tokio::test]
async fn lost_notifications_become_one_guest_each_and_a_second_run_queues_none() {
    // Arrange: three Contacts whose outbound messages never arrived, two per batch.
    let (env, org) = env_with(&[]).await;
    for i in 1..=3 {
        org.add_contact(
            &format!("003Hn00000Lost{i}AAA"),
            &ago(60 - i),
            json!({"Email": format!("lost{i}@example.com"), "Account": {"Name": "AE"}}),
        );
    }
    org.set_batch_size(2);

    // Act
    let first = run(&env, false).await;
    env.catch_up();
    env.drain().await;
    let second = run(&env, false).await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!(first["error"], Value::Null, "{first}");
    assert_eq!(counts(&first), [3, 3, 0, 0], "{first}");
    assert_eq!(first["stats"]["pages"], 2, "{first}");
    assert_eq!(counts(&second), [3, 0, 3, 0], "{second}");
    let mut emails: Vec<String> = env.sandbox.guests().into_iter().map(|g| g.email).collect();
    emails.sort();
    assert_eq!(
        emails,
        [
            "lost1@example.com",
            "lost2@example.com",
            "lost3@example.com"
        ]
    );
    assert_eq!(env.posts(), 3);
    assert_eq!(env.sandbox.guests()[0].company_name.as_deref(), Some("AE"));
}

#[tokio::test]
async fn a_contact_delivered_by_its_notification_and_listed_by_reconcile_is_one_guest() {
    let (env, org) = env_with(&[]).await;
    let contact = "003Hn00000BothWAAA";
    org.add_contact(contact, &ago(5), json!({"Email": "both@example.com"}));
    let xml = message(
        SALESFORCE_ORG_18,
        &[notification(
            "04l5e00000N0100AAA",
            contact,
            &[("Email", "both@example.com")],
        )],
    );
    assert_eq!(answer(post(&env.app, &xml).await).await, (200, Ok(())));

    let report = run(&env, false).await;
    env.catch_up();
    env.drain().await;

    assert_eq!(counts(&report), [1, 0, 1, 0], "{report}");
    assert_eq!(env.app.outbox_rows().await, 1);
    assert_eq!(env.posts(), 1);
    assert_eq!(env.sandbox.guests().len(), 1);
}

#[tokio::test]
async fn a_contact_refused_by_its_notification_is_queued_once_reconcile_lists_its_email() {
    // Arrange: created without an email (refused); the edit's notification was lost.
    let (env, org) = env_with(&[]).await;
    let contact = "003Hn00000LateRAAA";
    let xml = message(
        SALESFORCE_ORG_18,
        &[notification(
            "04l5e00000N0200AAA",
            contact,
            &[("FirstName", "Late")],
        )],
    );
    assert_eq!(answer(post(&env.app, &xml).await).await, (200, Ok(())));
    org.add_contact(contact, &ago(5), json!({"Email": "late@example.com"}));

    // Act
    let report = run(&env, false).await;
    env.catch_up();
    env.drain().await;
    let again = run(&env, false).await;

    // Assert
    assert_eq!(counts(&report), [1, 1, 0, 0], "{report}");
    assert_eq!(counts(&again), [1, 0, 1, 0], "{again}");
    assert_eq!(env.sandbox.guests().len(), 1);
    let refused = refused_rows(&env.db).await;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].1.is_some(),
        "resolved by the queued row: {refused:?}"
    );
}

#[tokio::test]
async fn a_dry_run_counts_what_it_would_queue_and_stores_nothing() {
    let (env, org) = env_with(&[]).await;
    org.add_contact(
        "003Hn00000DryAAAA",
        &ago(5),
        json!({"Email": "dry@example.com"}),
    );
    org.add_contact("003Hn00000NoMailA", &ago(4), json!({"FirstName": "No"}));

    let report = run(&env, true).await;

    assert_eq!(report["dry_run"], true);
    assert_eq!(counts(&report), [2, 1, 0, 1], "{report}");
    assert_eq!(env.app.outbox_rows().await, 0);
    assert!(refused_rows(&env.db).await.is_empty());
}

#[tokio::test]
async fn the_orgs_used_up_api_limit_ends_the_run_with_a_rate_limited_error() {
    let (env, org) = env_with(&[]).await;
    org.add_contact(
        "003Hn00000LimitAA",
        &ago(5),
        json!({"Email": "limit@example.com"}),
    );
    org.exceed_limit(100, None);

    let stopped = run(&env, false).await;

    assert_eq!(stopped["error"], "the CRM's API: rate limited", "{stopped}");
    assert_eq!(counts(&stopped), [0, 0, 0, 0], "{stopped}");
    assert_eq!(org.query_requests().len(), 1);
    assert_eq!(env.app.outbox_rows().await, 0);

    // The limit frees up: the next run lists the same window.
    org.exceed_limit(0, None);
    let resumed = run(&env, false).await;
    assert_eq!(counts(&resumed), [1, 1, 0, 0], "{resumed}");
}

#[tokio::test]
async fn a_reconciled_contacts_owner_is_the_guests_associated_member_in_tallyfy() {
    let member = (
        "BRIDGE__SOURCES__SALESFORCE__OWNER_MEMBERS__005HN00000ABCDEIAH",
        MEMBER.to_string(),
    );
    let (env, org) = env_with(&[member]).await;
    org.add_contact(
        "003Hn00000OwnerAA",
        &ago(5),
        json!({"Email": "listed.owned@example.com", "OwnerId": OWNER}),
    );

    let report = run(&env, false).await;
    env.catch_up();
    env.drain().await;

    assert_eq!(counts(&report), [1, 1, 0, 0], "{report}");
    let guest = sandbox_guest(&env, "listed.owned@example.com").await;
    assert_eq!(
        guest["data"]["details"]["associated_members"],
        json!([MEMBER])
    );
}
