//! `POST /reconcile/pipedrive` against the fake Pipedrive API, then delivery to the sandbox:
//! persons whose webhooks were lost become guests once, and a person that came by webhook and
//! by reconcile is one guest.

use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use super::webhooks::v1_updated_person;
use super::{MINUTE, pipedrive_env};
use crate::delivery::DeliveryEnv;
use crate::reconcile::fake_pipedrive::{FakePipedrive, person};
use crate::reconcile::{reconcile, reconcile_env};
use crate::sources::pipedrive::{post_person, v1_added_person};

/// The bridge (webhook adapter and lister) against `fake`, delivering to the sandbox.
async fn env(fake: &FakePipedrive) -> DeliveryEnv {
    reconcile_env(SandboxConfig::default(), &pipedrive_env(fake)).await
}

/// Person `id`, created `minutes_ago` minutes ago.
fn recent(id: u64, email: Option<&str>, minutes_ago: i64) -> Value {
    person(
        id,
        email,
        chrono::Utc::now().timestamp_millis() - minutes_ago * MINUTE,
    )
}

/// A run over the last hour: the report.
async fn reconcile_last_hour(env: &DeliveryEnv) -> Value {
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let (status, report) =
        reconcile(&env.app, "pipedrive", json!({"since": since.to_rfc3339()})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["error"], Value::Null, "{report}");
    report
}

fn counts(report: &Value) -> [&Value; 4] {
    ["listed", "queued", "already", "refused"].map(|key| &report[key])
}

#[tokio::test]
async fn persons_whose_webhooks_were_lost_become_guests_once() {
    // Arrange: three persons in Pipedrive, no webhook ever arrived.
    let fake = FakePipedrive::start().await;
    for id in 1..=3 {
        fake.add_person(recent(
            id,
            Some(&format!("lost{id}@example.com")),
            id as i64,
        ));
    }
    let env = env(&fake).await;

    // Act
    let first = reconcile_last_hour(&env).await;
    env.catch_up();
    env.drain().await;
    let second = reconcile_last_hour(&env).await;
    env.catch_up();
    env.drain().await;

    // Assert: three guests from the first run; the second finds them all queued already.
    assert_eq!(counts(&first), [&json!(3), &json!(3), &json!(0), &json!(0)]);
    assert_eq!(
        counts(&second),
        [&json!(3), &json!(0), &json!(3), &json!(0)]
    );
    assert_eq!(first["stats"]["requests"], 1);
    assert_eq!(env.sandbox.guests().len(), 3);
    assert_eq!(env.posts(), 3);
    assert_eq!(env.app.outbox_rows().await, 3);
}

#[tokio::test]
async fn a_person_that_came_by_webhook_and_by_reconcile_is_one_guest() {
    // Arrange: the webhook arrived; the reconcile lists the same person.
    let fake = FakePipedrive::start().await;
    fake.add_person(recent(4711, Some("both@example.com"), 5));
    let env = env(&fake).await;
    let items = post_person(&env.app, &v1_added_person(4711, "both@example.com")).await;
    assert_eq!(items[0]["status"], "queued");

    // Act
    let report = reconcile_last_hour(&env).await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!(
        counts(&report),
        [&json!(1), &json!(0), &json!(1), &json!(0)]
    );
    assert_eq!(env.sandbox.guests().len(), 1);
    assert_eq!(env.posts(), 1);
}

#[tokio::test]
async fn a_person_the_reconcile_refused_is_queued_when_an_update_brings_its_email() {
    // Arrange: listed without email, so kept as refused.
    let fake = FakePipedrive::start().await;
    fake.add_person(recent(808, None, 5));
    let env = env(&fake).await;
    let report = reconcile_last_hour(&env).await;
    assert_eq!(
        counts(&report),
        [&json!(1), &json!(0), &json!(0), &json!(1)]
    );

    // Act: Pipedrive's update webhook with the email.
    let update = post_person(&env.app, &v1_updated_person(808, Some("found@example.com"))).await;
    env.catch_up();
    env.drain().await;
    let again = reconcile_last_hour(&env).await;

    // Assert: one guest; the next reconcile still lists the person without email and queues
    // nothing.
    assert_eq!(update[0]["status"], "queued", "{update:?}");
    assert_eq!(env.sandbox.guests().len(), 1);
    assert_eq!(again["queued"], 0, "{again}");
    assert_eq!(env.app.outbox_rows().await, 1);
}
