//! `connect hubspot` and its check against the fake webhooks API: created once, then reused; a
//! paused subscription switched on; a target URL elsewhere moved; the developer key never shown.

use super::*;

#[tokio::test]
async fn connect_creates_the_subscriptions_then_reuses_them() {
    // Arrange: an app without settings or subscriptions.
    let fake = FakeHubSpot::start().await;
    let hooks = subscriptions(&settings(&fake, &[]), HUBSPOT_URL)
        .expect("builds")
        .expect("connect is configured");
    assert_eq!(
        hooks.check().await.expect("checked").state,
        SubscriptionState::Missing
    );

    // Act
    let (first, after_first) = hooks.connect().await.expect("connected");
    let writes = fake.webhook_writes().len();
    let (second, after_second) = hooks.connect().await.expect("connected again");

    // Assert
    assert_eq!(first, Connected::Created);
    assert_eq!(
        after_first.state,
        SubscriptionState::Ok,
        "{}",
        after_first.detail
    );
    assert_eq!(fake.target_url().as_deref(), Some(HUBSPOT_URL));
    let subscribed: Vec<(String, Option<String>, bool)> = fake
        .subscriptions()
        .into_iter()
        .map(|s| (s.event_type, s.property_name, s.active))
        .collect();
    assert_eq!(
        subscribed,
        [
            ("contact.creation".into(), None, true),
            ("contact.propertyChange".into(), Some("email".into()), true),
        ]
    );
    assert_eq!(writes, 3, "{:?}", fake.webhook_writes());
    assert_eq!(second, Connected::Reused);
    assert_eq!(after_second.state, SubscriptionState::Ok);
    assert_eq!(
        fake.webhook_writes().len(),
        writes,
        "the second connect wrote"
    );
    assert_eq!(fake.subscriptions().len(), 2);
}

#[tokio::test]
async fn connect_activates_a_paused_subscription_instead_of_adding_one() {
    let fake = FakeHubSpot::start().await;
    fake.set_target_url(HUBSPOT_URL);
    fake.add_subscription("contact.creation", None, false);
    fake.add_subscription("contact.propertyChange", Some("email"), true);
    fake.add_subscription("contact.propertyChange", Some("lastname"), true);
    let hooks = subscriptions(&settings(&fake, &[]), HUBSPOT_URL)
        .expect("builds")
        .expect("connect is configured");
    assert_eq!(
        hooks.check().await.expect("checked").state,
        SubscriptionState::Inactive
    );

    let (connected, state) = hooks.connect().await.expect("connected");

    assert_eq!(connected, Connected::Updated);
    assert_eq!(state.state, SubscriptionState::Ok);
    assert_eq!(fake.subscriptions().len(), 3);
    assert!(fake.subscriptions().iter().all(|s| s.active));
    let writes = fake.webhook_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0].starts_with("PATCH /webhooks/v3/54321/subscriptions/"),
        "{writes:?}"
    );
}

#[tokio::test]
async fn check_reports_a_target_url_that_points_elsewhere_and_connect_moves_it() {
    let fake = FakeHubSpot::start().await;
    fake.set_target_url("https://old-bridge.example.com/webhooks/hubspot");
    fake.add_subscription("contact.creation", None, true);
    fake.add_subscription("contact.propertyChange", Some("email"), true);
    let hooks = subscriptions(&settings(&fake, &[]), HUBSPOT_URL)
        .expect("builds")
        .expect("connect is configured");

    let seen = hooks.check().await.expect("checked");
    assert_eq!(seen.state, SubscriptionState::WrongUrl, "{}", seen.detail);
    assert!(
        seen.detail.contains("old-bridge.example.com"),
        "{}",
        seen.detail
    );

    let (connected, state) = hooks.connect().await.expect("connected");
    assert_eq!(
        (connected, state.state),
        (Connected::Updated, SubscriptionState::Ok)
    );
    assert_eq!(fake.target_url().as_deref(), Some(HUBSPOT_URL));
    assert_eq!(fake.webhook_writes(), ["PUT /webhooks/v3/54321/settings"]);
}

#[tokio::test]
async fn a_refused_developer_key_is_an_error_that_never_shows_the_key() {
    let fake = FakeHubSpot::start().await;
    let wrong = settings(
        &fake,
        &[(
            "BRIDGE__SOURCES__HUBSPOT__DEVELOPER_API_KEY",
            "not-the-key-4242".into(),
        )],
    );
    let hooks = subscriptions(&wrong, HUBSPOT_URL)
        .expect("builds")
        .expect("connect is configured");
    let error = hooks.check().await.expect_err("refused");
    assert_eq!(error.status(), Some(401));
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-the-key-4242"), "{shown}");
    assert!(!shown.contains("hapikey"), "{shown}");
    // A connection failure carries no URL (nor the key in its query) either.
    let unreachable = settings(
        &fake,
        &[(
            "BRIDGE__SOURCES__HUBSPOT__API_BASE_URL",
            "http://127.0.0.1:9".into(),
        )],
    );
    let hooks = subscriptions(&unreachable, HUBSPOT_URL)
        .expect("builds")
        .expect("connect is configured");
    let error = hooks.connect().await.expect_err("unreachable");
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(DEVELOPER_KEY) && !shown.contains("hapikey"),
        "{shown}"
    );
}

/// `tallyfy-bridge connect hubspot --url https://bridge.example.com [--check]` as the real
/// binary, configured for `fake` by environment variables alone.
async fn connect_command(fake: &FakeHubSpot, check: bool) -> std::process::Output {
    let mut command = std::process::Command::new(crate::binary::BINARY);
    command
        .env_clear()
        .args(["connect", "hubspot", "--url", "https://bridge.example.com"])
        .envs([
            ("BRIDGE__TALLYFY__ORG_ID", "org-1".to_string()),
            ("BRIDGE__TALLYFY__TOKEN", "tallyfy-token-value".into()),
            (
                "BRIDGE__INGEST__AUTH__SIGNING_SECRET",
                crate::helpers::SIGNING_SECRET.into(),
            ),
        ])
        .envs(hubspot_env(fake));
    if check {
        command.arg("--check");
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined")
}

#[tokio::test]
async fn the_connect_command_subscribes_the_app_and_its_check_then_passes() {
    let fake = FakeHubSpot::start().await;

    let unchecked = connect_command(&fake, true).await;
    let connected = connect_command(&fake, false).await;
    let checked = connect_command(&fake, true).await;

    assert!(!unchecked.status.success(), "a check of nothing passed");
    assert!(connected.status.success(), "{connected:?}");
    let said = String::from_utf8_lossy(&connected.stdout);
    assert!(said.starts_with("hubspot webhook created: ok"), "{said}");
    assert!(said.contains(HUBSPOT_URL), "{said}");
    assert!(checked.status.success(), "{checked:?}");
    assert_eq!(fake.subscriptions().len(), 2);
    for output in [&unchecked, &connected, &checked] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains(DEVELOPER_KEY), "{all}");
    }
}
