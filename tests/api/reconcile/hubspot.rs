//! HubSpot reconcile and connect against the fake HubSpot over loopback: the contact search pages,
//! splits a window under the result cap, keeps its pace and waits out 429s; `connect` creates,
//! reuses and reactivates the app's subscriptions; an email added later reaches a refused contact.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tallyfy_bridge::configuration::HubSpotSettings;
use tallyfy_bridge::crm::FetchError;
use tallyfy_bridge::crm::hubspot::reconcile::{lister, subscriptions};
use tallyfy_bridge::crm::hubspot::search::{ContactSearch, SearchLimits};
use tallyfy_bridge::crm::listing::{
    Connected, ListError, Listed, ListedContact, PageSink, SubscriptionState, Window,
};
use tallyfy_bridge::domain::event::StoredEvent;
use tallyfy_bridge::metrics::Metrics;

use super::fake_hubspot::{APP_ID, DEVELOPER_KEY, FakeHubSpot, TOKEN};
use crate::helpers::{Overrides, test_settings_with};
use crate::sources::{HUBSPOT_SECRET, HUBSPOT_URL, crm_env_with, hubspot, item_statuses};

/// 2026-12-01T00:00:00Z: contacts of a test are created from here on.
const DAY: i64 = 1_796_083_200_000;

/// HubSpot settings pointing at `fake`, through the same validation `serve` runs.
fn settings(fake: &FakeHubSpot, overrides: Overrides) -> HubSpotSettings {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = vec![
        (
            "BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET",
            HUBSPOT_SECRET.into(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL", HUBSPOT_URL.into()),
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", TOKEN.into()),
        (
            "BRIDGE__SOURCES__HUBSPOT__API_BASE_URL",
            fake.base_url.clone(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__SEARCH_INTERVAL_MS", "1".into()),
        ("BRIDGE__SOURCES__HUBSPOT__APP_ID", APP_ID.to_string()),
        (
            "BRIDGE__SOURCES__HUBSPOT__DEVELOPER_API_KEY",
            DEVELOPER_KEY.into(),
        ),
    ];
    env.extend(overrides.iter().cloned());
    test_settings_with(dir.path(), &env).sources.hubspot
}

/// The limits HubSpot documents, with a short pace and `cap`.
fn limits(cap: u64) -> SearchLimits {
    SearchLimits {
        cap,
        interval: Duration::from_millis(1),
        max_wait: Duration::from_secs(2),
        ..SearchLimits::hubspot(Duration::from_millis(1))
    }
}

/// Keeps every page it is handed.
#[derive(Default)]
struct Pages(Vec<Vec<Listed>>);

#[async_trait]
impl PageSink for Pages {
    async fn page(&mut self, contacts: Vec<Listed>) -> anyhow::Result<()> {
        self.0.push(contacts);
        Ok(())
    }
}

impl Pages {
    fn ids(&self) -> Vec<String> {
        self.0
            .iter()
            .flatten()
            .map(|l| l.record_id.clone())
            .collect()
    }
}

/// `n` contacts with emails, ids from `first`, one a second from `DAY`.
fn add_contacts(fake: &FakeHubSpot, first: u64, n: u64) {
    for i in 0..n {
        let id = first + i;
        fake.add(
            id,
            DAY + (i as i64) * 1000,
            json!({"email": format!("c{id}@example.com"), "firstname": "C"}),
        );
    }
}

fn whole_day() -> Window {
    Window {
        since: DAY,
        until: DAY + 86_400_000,
    }
}

#[tokio::test]
async fn a_window_is_listed_a_page_at_a_time_in_creation_order() {
    // Arrange: 450 contacts in the window, one before it and one at its end (excluded).
    let fake = FakeHubSpot::start().await;
    add_contacts(&fake, 1000, 450);
    fake.add(1, DAY - 1, json!({"email": "before@example.com"}));
    fake.add(2, DAY + 86_400_000, json!({"email": "after@example.com"}));
    let lister = lister(&settings(&fake, &[]), &Metrics::default())
        .expect("builds")
        .expect("a lister with an API token");
    let mut pages = Pages::default();

    // Act
    let stats = lister.list(whole_day(), &mut pages).await.expect("listed");

    // Assert: three pages of at most 200, every contact once, oldest first.
    assert_eq!(lister.source(), "hubspot");
    let sizes: Vec<usize> = pages.0.iter().map(Vec::len).collect();
    assert_eq!(sizes, [200, 200, 50]);
    let expected: Vec<String> = (1000..1450).map(|id: u64| id.to_string()).collect();
    assert_eq!(pages.ids(), expected);
    assert_eq!(
        (
            stats.requests,
            stats.pages,
            stats.rate_limited,
            stats.windows
        ),
        (3, 3, 0, 1)
    );
    let first = &pages.0[0][0];
    assert_eq!(first.created_at, DAY);
    let ListedContact::Guest { email, event } = &first.contact else {
        panic!("a guest: {first:?}")
    };
    assert_eq!(email, "c1000@example.com");
    assert!(
        matches!(event, StoredEvent::Guest { guest } if guest.first_name.as_deref() == Some("C"))
    );
    // The request as HubSpot documents it: createdate bounds, ascending, 200, `after` paging.
    let searches = fake.searches();
    assert_eq!(searches.len(), 3);
    let filters = &searches[0]["filterGroups"][0]["filters"];
    assert_eq!(
        filters,
        &json!([
            {"propertyName": "createdate", "operator": "GTE", "value": DAY.to_string()},
            {"propertyName": "createdate", "operator": "LT", "value": (DAY + 86_400_000).to_string()},
        ])
    );
    assert_eq!(searches[0]["limit"], 200);
    assert_eq!(searches[0].get("after"), None);
    assert_eq!(searches[1]["after"], "200");
    assert_eq!(searches[2]["after"], "400");
    let properties = searches[0]["properties"].as_array().expect("properties");
    for wanted in [
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "hubspot_owner_id",
        "createdate",
    ] {
        assert!(
            properties.contains(&json!(wanted)),
            "{wanted}: {properties:?}"
        );
    }
}

#[tokio::test]
async fn a_window_matching_more_than_the_cap_is_split_until_each_part_fits() {
    // Arrange: 120 contacts; one query may page through 50 of them.
    let fake = FakeHubSpot::start().await;
    fake.set_cap(50);
    add_contacts(&fake, 1, 120);
    let search = ContactSearch::new(
        &settings(&fake, &[]),
        TOKEN.to_string().into(),
        &Metrics::default(),
        limits(50),
    )
    .expect("builds");
    let window = Window {
        since: DAY,
        until: DAY + 120_000,
    };
    let mut pages = Pages::default();

    // Act
    let stats = tallyfy_bridge::crm::listing::Lister::list(&search, window, &mut pages)
        .await
        .expect("listed");

    // Assert: halves of 60, then quarters of 30: four parts listed, each contact once, in order.
    assert_eq!(stats.windows, 4);
    let expected: Vec<String> = (1..=120).map(|id: u64| id.to_string()).collect();
    assert_eq!(pages.ids(), expected);
    // One probe of the whole and of each half, one request per quarter; none past the cap.
    assert_eq!(stats.requests, 7);
    let searches = fake.searches();
    assert!(
        searches.iter().all(|s| s.get("after").is_none()),
        "{searches:?}"
    );
    let quarter = &searches[2]["filterGroups"][0]["filters"];
    assert_eq!(quarter[0]["value"], DAY.to_string());
    assert_eq!(quarter[1]["value"], (DAY + 30_000).to_string());
}

#[tokio::test]
async fn the_fake_refuses_to_page_past_its_cap_as_hubspot_does() {
    let fake = FakeHubSpot::start().await;
    fake.set_cap(50);
    add_contacts(&fake, 1, 120);
    let search = |after: Option<&str>| {
        let mut body = json!({"filterGroups": [{"filters": [
            {"propertyName": "createdate", "operator": "GTE", "value": DAY.to_string()}]}],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}], "limit": 50});
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        reqwest::Client::new()
            .post(format!("{}/crm/v3/objects/contacts/search", fake.base_url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let first: Value = search(None)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(first["total"], 120);
    assert_eq!(first["paging"]["next"]["after"], "50");
    let past = search(Some("50")).await.expect("sent");
    assert_eq!(past.status().as_u16(), 400);
}

#[tokio::test]
async fn a_429_is_waited_out_for_hubspots_window_and_counted() {
    // Arrange: the first two searches are refused with a 150 ms window.
    let fake = FakeHubSpot::start().await;
    add_contacts(&fake, 1, 3);
    fake.rate_limit_next(2, 150);
    let lister = lister(&settings(&fake, &[]), &Metrics::default())
        .expect("builds")
        .expect("a lister");
    let mut pages = Pages::default();

    // Act
    let stats = lister.list(whole_day(), &mut pages).await.expect("listed");

    // Assert: the contacts are all there; each retry waited the window out.
    assert_eq!(pages.ids(), ["1", "2", "3"]);
    assert_eq!((stats.requests, stats.rate_limited), (3, 2));
    for gap in fake.search_gaps() {
        assert!(gap >= Duration::from_millis(145), "{gap:?}");
    }
}

#[tokio::test]
async fn a_429_that_does_not_end_stops_the_listing_after_a_bounded_number_of_tries() {
    let fake = FakeHubSpot::start().await;
    add_contacts(&fake, 1, 3);
    fake.rate_limit_next(100, 1);
    let search = ContactSearch::new(
        &settings(&fake, &[]),
        TOKEN.to_string().into(),
        &Metrics::default(),
        limits(10_000),
    )
    .expect("builds");
    let mut pages = Pages::default();
    let error = tallyfy_bridge::crm::listing::Lister::list(&search, whole_day(), &mut pages)
        .await
        .expect_err("gave up");
    assert!(
        matches!(error, ListError::Fetch(FetchError::RateLimited { .. })),
        "{error}"
    );
    // The first try and five retries.
    assert_eq!(fake.searches().len(), 6);
    assert!(pages.0.is_empty());
}

#[tokio::test]
async fn searches_keep_the_configured_pace() {
    let fake = FakeHubSpot::start().await;
    add_contacts(&fake, 1, 600);
    let paced = settings(
        &fake,
        &[("BRIDGE__SOURCES__HUBSPOT__SEARCH_INTERVAL_MS", "60".into())],
    );
    let lister = lister(&paced, &Metrics::default())
        .expect("builds")
        .expect("a lister");
    lister
        .list(whole_day(), &mut Pages::default())
        .await
        .expect("listed");
    let gaps = fake.search_gaps();
    assert_eq!(gaps.len(), 2);
    for gap in gaps {
        assert!(gap >= Duration::from_millis(55), "{gap:?}");
    }
}

#[tokio::test]
async fn a_listed_contact_carries_its_owners_member_and_one_without_email_is_refused() {
    let fake = FakeHubSpot::start().await;
    fake.add(
        1,
        DAY,
        json!({"email": "owned@example.com", "hubspot_owner_id": "801"}),
    );
    fake.add(2, DAY + 1, json!({"email": null, "firstname": "No"}));
    let owners = [("BRIDGE__SOURCES__HUBSPOT__OWNER_MEMBERS__801", "12".into())];
    let lister = lister(&settings(&fake, &owners), &Metrics::default())
        .expect("builds")
        .expect("a lister");
    let mut pages = Pages::default();
    lister.list(whole_day(), &mut pages).await.expect("listed");
    let listed: Vec<&Listed> = pages.0.iter().flatten().collect();
    let ListedContact::Guest {
        event: StoredEvent::Guest { guest },
        ..
    } = &listed[0].contact
    else {
        panic!("a guest: {:?}", listed[0])
    };
    assert_eq!(guest.associated_members, Some(vec![12]));
    assert_eq!(
        listed[1].contact,
        ListedContact::Refused {
            field: "properties.email".into(),
            code: "missing_field"
        }
    );
}

#[tokio::test]
async fn without_an_api_token_or_connect_keys_there_is_nothing_to_build() {
    let fake = FakeHubSpot::start().await;
    let mut bare = settings(&fake, &[]);
    bare.api_token = None;
    bare.app_id = None;
    assert!(
        lister(&bare, &Metrics::default())
            .expect("builds")
            .is_none()
    );
    assert!(subscriptions(&bare, HUBSPOT_URL).expect("builds").is_none());
}

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

/// A `contact.propertyChange` of `email` for `id`, as HubSpot's webhooks guide shows one.
fn email_change(id: u64, email: &str, occurred_at: u64) -> Value {
    json!({"eventId": 3_000_000_000u64 + id, "subscriptionId": 2400002, "portalId": 62515,
           "appId": APP_ID, "occurredAt": occurred_at, "subscriptionType": "contact.propertyChange",
           "attemptNumber": 0, "objectId": id, "propertyName": "email", "propertyValue": email,
           "changeSource": "CRM_UI", "sourceId": "userId:777"})
}

/// The bridge with its HubSpot API on `fake` (owner 801 is member 12), delivering to a sandbox.
async fn bridge_on(fake: &FakeHubSpot) -> crate::delivery::DeliveryEnv {
    let (env, _other_crms) = crm_env_with(&[
        ("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", TOKEN.into()),
        (
            "BRIDGE__SOURCES__HUBSPOT__API_BASE_URL",
            fake.base_url.clone(),
        ),
        ("BRIDGE__SOURCES__HUBSPOT__OWNER_MEMBERS__801", "12".into()),
    ])
    .await;
    env
}

#[tokio::test]
async fn an_email_added_after_a_refused_creation_makes_the_guest() {
    // Arrange: a contact created without an email; its creation webhook is refused by the worker.
    let fake = FakeHubSpot::start().await;
    fake.add(
        9,
        DAY,
        json!({"email": null, "firstname": "Late", "hubspot_owner_id": "801"}),
    );
    let env = bridge_on(&fake).await;
    let created =
        item_statuses(hubspot::post_signed(&env.app, &json!([hubspot::creation(9)])).await).await;
    env.catch_up();
    env.drain().await;
    let refused_row = env.row(created[0]["id"].as_i64().expect("id")).await;
    assert_eq!(refused_row.state, "failed");

    // Act: the email is added in HubSpot, which sends the property change.
    fake.set(9, "email", json!("late@example.com"));
    let changed = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([email_change(9, "late@example.com", 1_767_225_700_000)]),
        )
        .await,
    )
    .await;
    env.catch_up();
    env.drain().await;

    // Assert: queued, read again and delivered once, with the owner's member.
    assert_eq!(changed[0]["status"], "queued", "{changed:?}");
    let row = env.row(changed[0]["id"].as_i64().expect("id")).await;
    assert_eq!(row.state, "delivered");
    assert_eq!(env.sandbox.create_count("late@example.com"), 1);
    assert_eq!(fake.reads(), 2);
    let resolved: Option<i64> = sqlx::query_scalar(
        "SELECT resolved_outbox_id FROM refused WHERE source = 'hubspot' AND record_id = '9'",
    )
    .fetch_one(&env.db)
    .await
    .expect("the refusal");
    assert_eq!(resolved, changed[0]["id"].as_i64());
    let guest = sandbox_guest(&env, "late@example.com").await;
    assert_eq!(guest["details"]["associated_members"], json!([12]));

    // A resend of the same change, or a later change, queues nothing more: the record has its row.
    let again = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([email_change(9, "late@example.com", 1_767_225_700_000)]),
        )
        .await,
    )
    .await;
    assert_eq!(again[0]["status"], "duplicate", "{again:?}");
    let later = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([email_change(9, "new@example.com", 1_767_225_800_000)]),
        )
        .await,
    )
    .await;
    assert_eq!(later[0]["status"], "duplicate", "{later:?}");
    assert_eq!(later[0]["id"], changed[0]["id"]);
    assert_eq!(env.sandbox.create_count("new@example.com"), 0);
}

#[tokio::test]
async fn an_email_change_of_a_contact_never_refused_is_ignored() {
    let fake = FakeHubSpot::start().await;
    let env = bridge_on(&fake).await;
    let items = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([email_change(5, "a@example.com", 1_767_225_700_000)]),
        )
        .await,
    )
    .await;
    assert_eq!(items[0]["status"], "ignored", "{items:?}");
    assert_eq!(env.app.outbox_rows().await, 0);
}

#[tokio::test]
async fn the_workers_contact_read_associates_the_owners_member() {
    let fake = FakeHubSpot::start().await;
    fake.add(
        5012,
        DAY,
        json!({"email": "owned@example.com", "hubspot_owner_id": "801"}),
    );
    fake.add(
        5013,
        DAY,
        json!({"email": "unowned@example.com", "hubspot_owner_id": "999"}),
    );
    let env = bridge_on(&fake).await;
    let items = item_statuses(
        hubspot::post_signed(
            &env.app,
            &json!([hubspot::creation(5012), hubspot::creation(5013)]),
        )
        .await,
    )
    .await;
    assert_eq!(items.len(), 2);
    env.catch_up();
    env.drain().await;
    assert_eq!(env.sandbox.guests().len(), 2);
    let owned = sandbox_guest(&env, "owned@example.com").await;
    assert_eq!(owned["details"]["associated_members"], json!([12]));
    let unowned = sandbox_guest(&env, "unowned@example.com").await;
    assert_eq!(unowned["details"]["associated_members"], json!(null));
}

/// The guest as the sandbox's Tallyfy API shows it (what the bridge's create request set).
async fn sandbox_guest(env: &crate::delivery::DeliveryEnv, email: &str) -> Value {
    let config = tallyfy_sandbox::SandboxConfig::default();
    let url = format!(
        "{}/api/organizations/{}/guests/{email}",
        env.sandbox.base_url(),
        config.org_id
    );
    let answer: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(&config.token)
        .header("X-Tallyfy-Client", "APIClient")
        .header("Accept", "application/json")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(answer["data"].is_object(), "{answer}");
    answer["data"].clone()
}
