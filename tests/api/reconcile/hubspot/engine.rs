//! Reconcile runs of HubSpot through `POST /reconcile/hubspot`, end to end to the sandbox:
//! contacts whose webhooks were lost become one guest each, once however many runs list them,
//! and a contact that came by webhook too stays one guest.

use super::*;
use crate::reconcile::{reconcile, reconcile_env};

/// The bridge with HubSpot's webhook and API (on `fake`) configured, admin endpoints open,
/// delivering to a sandbox.
async fn reconcile_bridge(fake: &FakeHubSpot) -> crate::delivery::DeliveryEnv {
    let mut env = hubspot_env(fake);
    env.push(("BRIDGE__SOURCES__HUBSPOT__OWNER_MEMBERS__801", "12".into()));
    reconcile_env(tallyfy_sandbox::SandboxConfig::default(), &env).await
}

/// A minute ago, and `i` ms later: inside a run's window.
fn recently(i: i64) -> i64 {
    chrono::Utc::now().timestamp_millis() - 60_000 + i
}

#[tokio::test]
async fn contacts_whose_webhooks_were_lost_become_one_guest_each_and_a_second_run_adds_none() {
    // Arrange: five contacts created in HubSpot; none of their webhooks reached the bridge.
    let fake = FakeHubSpot::start().await;
    for i in 1..=5 {
        fake.add(
            i,
            recently(i as i64),
            json!({"email": format!("lost{i}@example.com")}),
        );
    }
    fake.set(3, "hubspot_owner_id", json!("801"));
    let env = reconcile_bridge(&fake).await;

    // Act
    let (status, first) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;
    env.catch_up();
    env.drain().await;
    let (_, second) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["error"], json!(null), "{first}");
    assert_eq!(
        (&first["listed"], &first["queued"], &first["already"]),
        (&json!(5), &json!(5), &json!(0))
    );
    assert_eq!(first["stats"]["windows"], 1);
    assert_eq!(
        (&second["listed"], &second["queued"], &second["already"]),
        (&json!(5), &json!(0), &json!(5))
    );
    assert_eq!(env.sandbox.guests().len(), 5);
    assert_eq!(env.posts(), 5);
    // Listed with their fields: the worker read none of them again.
    assert_eq!(fake.reads(), 0);
    let owned = sandbox_guest(&env, "lost3@example.com").await;
    assert_eq!(owned["details"]["associated_members"], json!([12]));
}

#[tokio::test]
async fn a_contact_that_came_by_webhook_and_by_reconcile_is_one_guest() {
    // Arrange: contact 1's webhook arrives before the run, contact 2's after it.
    let fake = FakeHubSpot::start().await;
    fake.add(1, recently(1), json!({"email": "hooked@example.com"}));
    fake.add(2, recently(2), json!({"email": "late-hook@example.com"}));
    let env = reconcile_bridge(&fake).await;
    let before =
        item_statuses(hubspot::post_signed(&env.app, &json!([hubspot::creation(1)])).await).await;
    assert_eq!(before[0]["status"], "queued");

    // Act
    let (_, run) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;
    let after =
        item_statuses(hubspot::post_signed(&env.app, &json!([hubspot::creation(2)])).await).await;
    env.catch_up();
    env.drain().await;

    // Assert: the run queued only contact 2; its webhook then found it queued.
    assert_eq!(
        (&run["listed"], &run["queued"], &run["already"]),
        (&json!(2), &json!(1), &json!(1)),
        "{run}"
    );
    assert_eq!(after[0]["status"], "duplicate", "{after:?}");
    assert_eq!(env.sandbox.create_count("hooked@example.com"), 1);
    assert_eq!(env.sandbox.create_count("late-hook@example.com"), 1);
    assert_eq!(env.posts(), 2);
}

#[tokio::test]
async fn a_listed_contact_without_an_email_is_kept_refused_once_and_its_email_later_queues_it() {
    // Arrange
    let fake = FakeHubSpot::start().await;
    fake.add(
        7,
        recently(7),
        json!({"email": null, "firstname": "Phone only"}),
    );
    let env = reconcile_bridge(&fake).await;

    // Act: two runs list it without an email; then the email is added in HubSpot.
    let (_, first) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;
    let (_, second) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;
    fake.set(7, "email", json!("found@example.com"));
    let change = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([email_change(7, "found@example.com", 1_767_225_700_000)]),
        )
        .await,
    )
    .await;
    env.catch_up();
    env.drain().await;

    // Assert
    assert_eq!(
        (&first["refused"], &second["refused"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(second["already"], 1);
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refused WHERE source = 'hubspot' AND record_id = '7'",
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(kept, 1);
    assert_eq!(change[0]["status"], "queued", "{change:?}");
    assert_eq!(env.sandbox.create_count("found@example.com"), 1);
}

#[tokio::test]
async fn a_run_hubspot_keeps_refusing_with_429_reports_its_error_and_keeps_the_watermark() {
    let fake = FakeHubSpot::start().await;
    fake.add(1, recently(1), json!({"email": "a@example.com"}));
    fake.rate_limit_next(100, 1);
    let env = reconcile_bridge(&fake).await;

    let (status, run) = reconcile(&env.app, "hubspot", json!({"days": 1})).await;

    assert_eq!(status, 200, "{run}");
    let error = run["error"].as_str().expect("an error");
    assert!(error.contains("rate limited"), "{error}");
    assert_eq!(run["queued"], 0);
    assert_eq!(fake.searches().len(), 6);
    let watermark: Option<i64> =
        sqlx::query_scalar("SELECT watermark FROM reconcile_state WHERE source = 'hubspot'")
            .fetch_optional(&env.db)
            .await
            .expect("state")
            .flatten();
    assert_eq!(watermark, None);
}
