//! Pipedrive's reconcile and connect against the fake Pipedrive API over loopback: persons
//! listed newest first until the window's start, rate limits waited out, the `create.person`
//! webhook made once; and, through the webhook adapter, email later and owner mapping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_bridge::configuration::PipedriveSettings;
use tallyfy_bridge::crm::FetchError;
use tallyfy_bridge::crm::listing::{
    Connected, ListError, ListStats, Listed, ListedContact, Lister, PageSink, SubscriptionState,
    Subscriptions, Window,
};
use tallyfy_bridge::crm::pipedrive::pacing::{Pacing, Pause};
use tallyfy_bridge::crm::pipedrive::reconcile::{self, PersonsLister};
use tallyfy_bridge::domain::event::StoredEvent;
use tallyfy_bridge::metrics::Metrics;

use super::fake_pipedrive::{FakePipedrive, person};
use crate::sources::{PIPEDRIVE_PASSWORD, PIPEDRIVE_TOKEN, PIPEDRIVE_USER};

/// 2026-01-01T00:00:00Z; person `i` of a test is created `i` minutes before it.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const TARGET: &str = "https://bridge.example.com/webhooks/pipedrive";

/// The waits a run asked for, instead of sleeping them.
#[derive(Default)]
struct Waits(Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Pause for Waits {
    async fn pause(&self, wait: Duration) {
        self.0.lock().expect("waits").push(wait);
    }
}

impl Waits {
    fn taken(&self) -> Vec<Duration> {
        self.0.lock().expect("waits").clone()
    }
}

/// Collects the pages a lister hands over.
#[derive(Default)]
struct Pages(Vec<Vec<Listed>>);

#[async_trait::async_trait]
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
            .map(|listed| listed.record_id.clone())
            .collect()
    }
}

/// `[sources.pipedrive]` against `fake`, as an operator would set it, plus `extra`.
fn settings(fake: &FakePipedrive, extra: &[(&str, String)]) -> PipedriveSettings {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut overrides = vec![
        (
            "BRIDGE__SOURCES__PIPEDRIVE__USERNAME",
            PIPEDRIVE_USER.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            PIPEDRIVE_PASSWORD.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN",
            PIPEDRIVE_TOKEN.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_BASE_URL",
            fake.base_url.clone(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    crate::helpers::test_settings_with(dir.path(), &overrides)
        .sources
        .pipedrive
}

fn lister(fake: &FakePipedrive, page: u32) -> (PersonsLister, Arc<Waits>) {
    let waits = Arc::new(Waits::default());
    let pacing = Pacing {
        pause: waits.clone(),
        ..Pacing::default()
    };
    let lister = PersonsLister::new(&settings(fake, &[]), &Metrics::default(), page, pacing)
        .expect("builds")
        .expect("an API token is set");
    (lister, waits)
}

/// Persons 1..=n, person `i` created `i` minutes before T0, each with an email.
async fn fake_with_persons(n: u64) -> FakePipedrive {
    let fake = FakePipedrive::start().await;
    for i in 1..=n {
        let email = format!("person{i}@example.com");
        fake.add_person(person(i, Some(&email), T0 - i as i64 * MINUTE));
    }
    fake
}

fn everything() -> Window {
    Window {
        since: 0,
        until: T0 + MINUTE,
    }
}

async fn list(lister: &PersonsLister, window: Window) -> (Result<ListStats, ListError>, Pages) {
    let mut pages = Pages::default();
    let stats = lister.list(window, &mut pages).await;
    (stats, pages)
}

#[tokio::test]
async fn persons_are_listed_newest_first_across_cursor_pages() {
    // Arrange: 7 persons, pages of 3.
    let fake = fake_with_persons(7).await;
    let (lister, waits) = lister(&fake, 3);

    // Act
    let (stats, pages) = list(&lister, everything()).await;

    // Assert: three pages, newest first, the cursor of each answer sent with the next request.
    let stats = stats.expect("listed");
    assert_eq!(pages.ids(), ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(pages.0.len(), 3);
    assert_eq!(
        stats,
        ListStats {
            requests: 3,
            pages: 3,
            rate_limited: 0,
            windows: 1
        }
    );
    let queries = fake.person_queries();
    assert_eq!(queries.len(), 3);
    for query in &queries {
        assert!(
            query.contains("sort_by=add_time") && query.contains("sort_direction=desc"),
            "{query}"
        );
        assert!(query.contains("limit=3"), "{query}");
    }
    assert!(!queries[0].contains("cursor="));
    assert!(queries[1].contains("cursor=") && queries[2].contains("cursor="));
    assert_eq!(
        fake.token_in_query(),
        0,
        "the token goes in x-api-token only"
    );
    assert!(waits.taken().is_empty());
}

#[tokio::test]
async fn the_walk_back_stops_at_the_first_person_older_than_the_window() {
    // Arrange: 10 persons in pages of 2; the window holds persons 2..=4 (person 1 is created
    // at its end, which is exclusive).
    let fake = fake_with_persons(10).await;
    let (lister, _) = lister(&fake, 2);
    let window = Window {
        since: T0 - 4 * MINUTE,
        until: T0 - MINUTE,
    };

    // Act
    let (stats, pages) = list(&lister, window).await;

    // Assert: page 3 holds person 5, older than the window: 3 requests, not the 5 of the list.
    let stats = stats.expect("listed");
    assert_eq!(pages.ids(), ["2", "3", "4"]);
    assert_eq!((stats.requests, stats.pages), (2 + 1, 2));
    assert_eq!(fake.person_queries().len(), 3);
}

#[tokio::test]
async fn a_429_burst_is_waited_out_for_pipedrives_reset_and_the_listing_completes() {
    // Arrange: the first two requests hit the burst limit (x-ratelimit-reset: 2).
    let fake = fake_with_persons(4).await;
    fake.rate_limit_next(2);
    let (lister, waits) = lister(&fake, 2);

    // Act
    let (stats, pages) = list(&lister, everything()).await;

    // Assert
    let stats = stats.expect("listed after the waits");
    assert_eq!(pages.ids(), ["1", "2", "3", "4"]);
    assert_eq!(waits.taken(), [Duration::from_secs(2); 2]);
    assert_eq!((stats.requests, stats.pages, stats.rate_limited), (4, 2, 2));
}

#[tokio::test]
async fn a_spent_daily_budget_ends_the_listing_at_once() {
    let fake = fake_with_persons(4).await;
    fake.spend_daily_budget();
    let (lister, waits) = lister(&fake, 2);
    let (stats, pages) = list(&lister, everything()).await;
    let Err(ListError::Fetch(FetchError::Transient { status, detail })) = stats else {
        panic!("the budget ends the run: {stats:?}")
    };
    assert_eq!(status, Some(429));
    assert!(detail.contains("daily API token budget"), "{detail}");
    assert!(pages.0.is_empty() && waits.taken().is_empty());
    assert_eq!(fake.person_queries().len(), 1);
}

#[tokio::test]
async fn a_refused_token_ends_the_listing() {
    let fake = fake_with_persons(1).await;
    let settings = settings(
        &fake,
        &[("BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN", "revoked".into())],
    );
    let lister = PersonsLister::new(&settings, &Metrics::default(), 2, Pacing::default())
        .expect("builds")
        .expect("an API token is set");
    let (stats, _) = list(&lister, everything()).await;
    assert!(
        matches!(
            stats,
            Err(ListError::Fetch(FetchError::Unauthorized { status: 401 }))
        ),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_listed_person_is_read_as_its_webhook_with_owner_org_and_refusal() {
    // Arrange: one person naming its organisation by id, one without email.
    let fake = FakePipedrive::start().await;
    let mut with_org = person(1, Some("Grace@Example.com"), T0 - MINUTE);
    with_org["org_id"] = json!(42);
    fake.add_person(with_org);
    fake.add_person(person(2, None, T0 - 2 * MINUTE));
    let owners = [(
        "BRIDGE__SOURCES__PIPEDRIVE__OWNER_MEMBERS__1234567",
        "678".to_owned(),
    )];
    let lister = PersonsLister::new(
        &settings(&fake, &owners),
        &Metrics::default(),
        10,
        Pacing::default(),
    )
    .expect("builds")
    .expect("an API token is set");

    // Act
    let (stats, pages) = list(&lister, everything()).await;

    // Assert
    stats.expect("listed");
    let listed: Vec<&Listed> = pages.0.iter().flatten().collect();
    let ListedContact::Guest { email, event } = &listed[0].contact else {
        panic!("a guest: {:?}", listed[0])
    };
    assert_eq!(email, "grace@example.com");
    assert_eq!(listed[0].created_at, T0 - MINUTE);
    let StoredEvent::PipedrivePerson { org_id, guest } = event else {
        panic!("the organisation's name is read by the worker: {event:?}")
    };
    assert_eq!(org_id, "42");
    assert_eq!(guest.associated_members, Some(vec![678]));
    assert_eq!(
        listed[1].contact,
        ListedContact::Refused {
            field: "emails".into(),
            code: "missing_field"
        }
    );
    assert_eq!(listed[1].record_id, "2");
}

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
        (&json!(TARGET), &json!("create"), &json!("person"))
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
        let stale = fake.add_webhook(TARGET, "create", user, active);
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
