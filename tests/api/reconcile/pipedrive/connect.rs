//! `connect pipedrive` and its check against the fake's `/v1/webhooks`: one webhook made and
//! then reused, a stale one replaced, Pipedrive's own deletion seen, others' webhooks left alone;
//! and the scheduled check at `sources.pipedrive.webhook_url`.

use serde_json::json;
use tallyfy_bridge::crm::listing::{Connected, SubscriptionState, Subscriptions};
use tallyfy_bridge::crm::pipedrive::pacing::Pacing;
use tallyfy_bridge::crm::pipedrive::reconcile;
use tallyfy_bridge::metrics::Metrics;

use super::settings;
use crate::reconcile::fake_pipedrive::FakePipedrive;
use crate::sources::PIPEDRIVE_USER;

const TARGET: &str = "https://bridge.example.com/webhooks/pipedrive";

fn webhooks(fake: &FakePipedrive) -> reconcile::PipedriveWebhooks {
    reconcile::webhooks(&settings(fake, &[]), TARGET, Pacing::default())
        .expect("builds")
        .expect("token and credentials are set")
}

fn methods(fake: &FakePipedrive) -> Vec<String> {
    fake.webhook_calls().into_iter().map(|(m, _)| m).collect()
}

#[tokio::test]
async fn connect_creates_the_webhook_once_then_reuses_it() {
    // Arrange
    let fake = FakePipedrive::start().await;
    let pipedrive = webhooks(&fake);
    assert_eq!(
        pipedrive.check().await.expect("checked").state,
        SubscriptionState::Missing
    );

    // Act
    let (first, found) = pipedrive.connect().await.expect("connected");
    let (second, again) = pipedrive.connect().await.expect("connected");

    // Assert: one POST, with the adapter's credentials and Pipedrive's v2 names.
    assert_eq!((first, second), (Connected::Created, Connected::Reused));
    assert_eq!(
        (found.state, again.state),
        (SubscriptionState::Ok, SubscriptionState::Ok)
    );
    let hooks = fake.webhooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(
        (
            &hook["subscription_url"],
            &hook["event_action"],
            &hook["event_object"]
        ),
        (&json!(TARGET), &json!("*"), &json!("person"))
    );
    assert_eq!(
        (&hook["version"], &hook["http_auth_user"]),
        (&json!("2.0"), &json!(PIPEDRIVE_USER))
    );
    assert_eq!(methods(&fake), ["GET", "GET", "POST", "GET"]);
    assert_eq!(
        pipedrive.check().await.expect("checked").state,
        SubscriptionState::Ok
    );
}

#[tokio::test]
async fn connect_replaces_an_inactive_webhook_or_one_with_other_credentials() {
    for (user, active, seen) in [
        (Some(PIPEDRIVE_USER), false, SubscriptionState::Inactive),
        (Some("someone-else"), true, SubscriptionState::WrongUrl),
        (None, true, SubscriptionState::WrongUrl),
    ] {
        // Arrange
        let fake = FakePipedrive::start().await;
        let stale = fake.add_webhook(TARGET, "*", user, active);
        let pipedrive = webhooks(&fake);
        assert_eq!(pipedrive.check().await.expect("checked").state, seen);

        // Act
        let (done, found) = pipedrive.connect().await.expect("connected");

        // Assert: the stale one deleted, one matching webhook left.
        assert_eq!(
            (done, found.state),
            (Connected::Updated, SubscriptionState::Ok)
        );
        let hooks = fake.webhooks();
        assert_eq!(hooks.len(), 1, "{user:?}");
        assert_ne!(hooks[0]["id"], json!(stale));
        assert_eq!(hooks[0]["is_active"], json!(1));
        let deleted = format!("/v1/webhooks/{stale}");
        assert!(fake.webhook_calls().contains(&("DELETE".into(), deleted)));
    }
}

#[tokio::test]
async fn a_webhook_of_creations_only_is_replaced_by_one_that_sends_updates_too() {
    // Arrange: made by hand for `create` only: creations arrive, an email added later does not.
    let fake = FakePipedrive::start().await;
    let creations = fake.add_webhook(TARGET, "create", Some(PIPEDRIVE_USER), true);
    let pipedrive = webhooks(&fake);
    let seen = pipedrive.check().await.expect("checked");
    assert_eq!(seen.state, SubscriptionState::Ok);
    assert!(seen.detail.contains("not updates"), "{}", seen.detail);

    // Act
    let (done, found) = pipedrive.connect().await.expect("connected");

    // Assert
    assert_eq!(done, Connected::Updated);
    assert!(
        found.detail.contains("creations and updates"),
        "{}",
        found.detail
    );
    let hooks = fake.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_ne!(hooks[0]["id"], json!(creations));
    assert_eq!(hooks[0]["event_action"], "*");
}

#[tokio::test]
async fn check_reports_missing_once_pipedrive_deletes_the_webhook() {
    let fake = FakePipedrive::start().await;
    let pipedrive = webhooks(&fake);
    pipedrive.connect().await.expect("connected");
    let id = fake.webhooks()[0]["id"].as_u64().expect("id");
    fake.remove_webhook(id);
    let found = pipedrive.check().await.expect("checked");
    assert_eq!(found.state, SubscriptionState::Missing);
    assert!(found.detail.contains(TARGET), "{}", found.detail);
}

#[tokio::test]
async fn another_bridge_address_is_a_wrong_url_and_other_services_are_left_alone() {
    let fake = FakePipedrive::start().await;
    let zapier = fake.add_webhook(
        "https://hooks.zapier.com/hooks/catch/1/x",
        "create",
        None,
        true,
    );
    let pipedrive = webhooks(&fake);
    assert_eq!(
        pipedrive.check().await.expect("checked").state,
        SubscriptionState::Missing
    );
    fake.add_webhook(
        "https://old-bridge.example.com/webhooks/pipedrive",
        "create",
        Some(PIPEDRIVE_USER),
        true,
    );
    let found = pipedrive.check().await.expect("checked");
    assert_eq!(found.state, SubscriptionState::WrongUrl);
    assert!(found.detail.contains("old-bridge"), "{}", found.detail);

    let (done, _) = pipedrive.connect().await.expect("connected");

    // Only webhooks at this bridge's own URL are ever deleted.
    assert_eq!(done, Connected::Created);
    assert_eq!(fake.webhooks().len(), 3);
    assert!(fake.webhooks().iter().any(|w| w["id"] == json!(zapier)));
    assert!(!methods(&fake).contains(&"DELETE".to_owned()));
}

#[tokio::test]
async fn without_the_webhooks_basic_credentials_there_is_nothing_to_connect() {
    let fake = FakePipedrive::start().await;
    let mut settings = settings(&fake, &[]);
    settings.username = None;
    assert!(
        reconcile::subscriptions(&settings, TARGET)
            .expect("builds")
            .is_none()
    );
    settings.api_token = None;
    assert!(
        reconcile::lister(&settings, &Metrics::default())
            .expect("builds")
            .is_none()
    );
}

#[tokio::test]
async fn the_scheduled_run_checks_the_webhook_at_sources_pipedrive_webhook_url() {
    // Arrange: the bridge's webhook exists in Pipedrive; a schedule is due at start-up.
    let fake = FakePipedrive::start().await;
    fake.add_webhook(TARGET, "*", Some(PIPEDRIVE_USER), true);
    let mut overrides = super::pipedrive_env(&fake);
    overrides.push((
        "BRIDGE__SOURCES__PIPEDRIVE__RECONCILE_EVERY_SECS",
        "3600".into(),
    ));
    overrides.push(("BRIDGE__SOURCES__PIPEDRIVE__WEBHOOK_URL", TARGET.into()));
    let app = crate::reconcile::spawn_reconcile_app(&overrides).await;

    // Act: the schedule runs in the background; wait (bounded) until /status shows its check.
    let mut subscription = serde_json::Value::Null;
    for _ in 0..200 {
        let status: serde_json::Value = app.get("/status").await.json().await.expect("json");
        subscription = status["reconcile"][0]["subscription"].clone();
        if !subscription.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // Assert: the check listed the webhooks and found the one at the configured URL.
    assert_eq!(subscription["state"], "ok", "{subscription}");
    assert!(
        fake.webhook_calls()
            .contains(&("GET".into(), "/v1/webhooks".into())),
        "{:?}",
        fake.webhook_calls()
    );
}
