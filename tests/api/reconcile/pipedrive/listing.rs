//! The persons lister: cursor pages newest first, the walk-back ending at the window's start,
//! Pipedrive's rate limits, and each person read as its webhook would be.

use crate::reconcile::Pages;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tallyfy_bridge::crm::FetchError;
use tallyfy_bridge::crm::listing::{ListError, ListStats, Listed, ListedContact, Lister, Window};
use tallyfy_bridge::crm::pipedrive::pacing::Pacing;
use tallyfy_bridge::crm::pipedrive::reconcile::PersonsLister;
use tallyfy_bridge::domain::event::StoredEvent;
use tallyfy_bridge::metrics::Metrics;

use super::{MINUTE, T0, Waits, settings};
use crate::reconcile::fake_pipedrive::{FakePipedrive, person};

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
