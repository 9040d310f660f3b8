//! Salesforce reconcile against the fake org over loopback (the lister the engine runs, built
//! from validated settings): batches followed to the end, the window's `CreatedDate` bounds, the
//! token renewed, the daily limit; then through the engine (`engine`) and outbound messages
//! (`messages`).

mod binary;
mod engine;
mod messages;

use crate::reconcile::Pages;
use serde_json::json;
use tallyfy_bridge::crm::FetchError;
use tallyfy_bridge::crm::listing::{ListError, ListStats, Listed, ListedContact, Lister, Window};
use tallyfy_bridge::crm::salesforce::{Retry, SalesforceLister};
use tallyfy_bridge::domain::event::StoredEvent;
use tallyfy_bridge::metrics::Metrics;

use super::fake_salesforce::{FakeSalesforce, SF_CLIENT_ID, SF_CLIENT_SECRET};
use crate::helpers::test_settings_with;

const SINCE: &str = "2026-12-01T00:00:00Z";
const UNTIL: &str = "2026-12-02T00:00:00Z";
const OWNER: &str = "005Hn00000ABCdeIAH";
const MEMBER: u64 = 4242;

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .timestamp_millis()
}

fn window() -> Window {
    Window {
        since: ms(SINCE),
        until: ms(UNTIL),
    }
}

/// The API keys of the fake's connected app, then `extra`.
fn api_keys(org: &FakeSalesforce, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        (
            "BRIDGE__SOURCES__SALESFORCE__INSTANCE_URL",
            org.base_url.clone(),
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__CLIENT_ID",
            SF_CLIENT_ID.into(),
        ),
        (
            "BRIDGE__SOURCES__SALESFORCE__CLIENT_SECRET",
            SF_CLIENT_SECRET.into(),
        ),
    ];
    keys.extend(extra.iter().cloned());
    keys
}

/// The lister as the engine builds it, from settings that went through validation, retrying
/// without waits.
fn lister(org: &FakeSalesforce, extra: &[(&'static str, String)]) -> SalesforceLister {
    let dir = tempfile::tempdir().expect("dir");
    let settings = test_settings_with(dir.path(), &api_keys(org, extra));
    SalesforceLister::from_settings(
        &settings.sources.salesforce,
        &Metrics::default(),
        Retry::immediate(),
    )
    .expect("a lister")
    .expect("configured")
}

async fn list(lister: &SalesforceLister) -> (Result<ListStats, ListError>, Pages) {
    let mut pages = Pages::default();
    let result = lister.list(window(), &mut pages).await;
    (result, pages)
}

/// `n` Contacts created an hour apart from 01:00 on the window's day, with emails.
fn add_contacts(org: &FakeSalesforce, n: usize) {
    for i in 1..=n {
        org.add_contact(
            &format!("003Hn0000{i:05}AAA"),
            &format!("2026-12-01T{i:02}:00:00Z"),
            json!({"Email": format!("person{i}@example.com"), "FirstName": "P"}),
        );
    }
}

#[tokio::test]
async fn a_window_of_three_batches_is_listed_in_order_and_whole() {
    // Arrange: 5 Contacts in the window, 2 a batch (Salesforce's is 2,000).
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 5);
    org.set_batch_size(2);
    let lister = lister(&org, &[]);

    // Act
    let (result, pages) = list(&lister).await;

    // Assert: one token, three query requests (the first and two locators), three pages.
    let stats = result.expect("listed");
    assert_eq!(
        stats,
        ListStats {
            requests: 4,
            pages: 3,
            rate_limited: 0,
            windows: 1
        }
    );
    assert_eq!(pages.0.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let expected: Vec<String> = (1..=5).map(|i| format!("003Hn0000{i:05}AAA")).collect();
    assert_eq!(pages.ids(), expected);
    let requests = org.query_requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[1].ends_with("/query/01gFAKE000001-2"),
        "{requests:?}"
    );
    assert!(
        requests[2].ends_with("/query/01gFAKE000001-4"),
        "{requests:?}"
    );
    assert_eq!(org.token_requests(), 1);
}

#[tokio::test]
async fn the_querys_created_date_bounds_are_the_window_since_included_until_excluded() {
    let org = FakeSalesforce::start().await;
    for (id, created) in [
        ("003Before", "2026-11-30T23:59:59Z"),
        ("003AtSince", SINCE),
        ("003Inside", "2026-12-01T12:00:00.500Z"),
        ("003AtUntil", UNTIL),
    ] {
        org.add_contact(id, created, json!({"Email": format!("{id}@example.com")}));
    }
    let lister = lister(&org, &[]);

    let (result, pages) = list(&lister).await;

    result.expect("listed");
    assert_eq!(pages.ids(), ["003AtSince", "003Inside"]);
    let soql = org.soql();
    assert_eq!(soql.len(), 1);
    assert!(
        soql[0].contains(
            "FROM Contact WHERE CreatedDate >= 2026-12-01T00:00:00Z AND CreatedDate < 2026-12-02T00:00:00Z ORDER BY CreatedDate"
        ),
        "{soql:?}"
    );
    assert!(
        soql[0].starts_with(
            "SELECT Id, Email, FirstName, LastName, Phone, OwnerId, CreatedDate, Account.Name FROM"
        ),
        "{soql:?}"
    );
    let Listed { created_at, .. } = &pages.0[0][1];
    assert_eq!(*created_at, ms("2026-12-01T12:00:00.500Z"));
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_listing_goes_on() {
    // Arrange: the token expires after the first batch, mid-listing.
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 3);
    org.set_batch_size(1);
    org.expire_tokens_after(1);
    let lister = lister(&org, &[]);

    // Act
    let (result, pages) = list(&lister).await;

    // Assert: the second batch answered 401 INVALID_SESSION_ID, a new token, then the rest.
    let stats = result.expect("listed");
    assert_eq!(pages.ids().len(), 3);
    assert_eq!(org.token_requests(), 2);
    assert_eq!(org.query_requests().len(), 4);
    assert_eq!((stats.requests, stats.rate_limited), (6, 0));

    // The token is kept between runs; once revoked, one renewal again.
    let (again, _) = list(&lister).await;
    again.expect("listed");
    assert_eq!(org.token_requests(), 2);
    org.expire_tokens_after(0);
    let (renewed, pages) = list(&lister).await;
    renewed.expect("listed");
    assert_eq!(pages.ids().len(), 3);
    assert_eq!(org.token_requests(), 3);
}

#[tokio::test]
async fn a_wrong_consumer_secret_is_refused_by_name_never_by_value() {
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 1);
    let wrong = "not-the-consumer-secret-0123";
    let lister = lister(
        &org,
        &[("BRIDGE__SOURCES__SALESFORCE__CLIENT_SECRET", wrong.into())],
    );

    let (result, pages) = list(&lister).await;

    let error = result.expect_err("refused");
    let message = error.to_string();
    assert!(
        matches!(
            error,
            ListError::Fetch(FetchError::Permanent { status: 400, .. })
        ),
        "{error:?}"
    );
    assert!(
        message.contains("invalid_client: invalid client credentials"),
        "{message}"
    );
    assert!(
        message.contains("sources.salesforce.client_secret") || message.contains("client_secret"),
        "{message}"
    );
    for secret in [wrong, SF_CLIENT_SECRET] {
        assert!(!message.contains(secret), "{message}");
        assert!(!format!("{error:?} {lister:?}").contains(secret));
    }
    assert!(pages.0.is_empty());
    assert_eq!((org.token_requests(), org.query_requests().len()), (1, 0));
}

#[tokio::test]
async fn the_orgs_used_up_api_limit_stops_the_run_as_rate_limited_without_retrying() {
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 3);
    org.exceed_limit(100, None);
    let lister = lister(&org, &[]);

    let (result, pages) = list(&lister).await;

    // Every retry would spend the org's shared daily limit: one request, then the error.
    let error = result.expect_err("limit");
    assert!(
        matches!(
            error,
            ListError::Fetch(FetchError::RateLimited { retry_after: None })
        ),
        "{error:?}"
    );
    assert!(pages.0.is_empty());
    assert_eq!(org.query_requests().len(), 1);
}

#[tokio::test]
async fn a_limit_with_a_retry_after_is_waited_out_and_counted() {
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 2);
    // Retry-After: 0, so the test waits for nothing; the lister waits what it is told.
    org.exceed_limit(1, Some(0));
    let lister = lister(&org, &[]);

    let (result, pages) = list(&lister).await;

    let stats = result.expect("listed after the wait");
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(pages.ids().len(), 2);
    assert_eq!(org.query_requests().len(), 2);
}

#[tokio::test]
async fn a_503_is_retried_a_bounded_number_of_times() {
    let org = FakeSalesforce::start().await;
    add_contacts(&org, 1);
    let lister = lister(&org, &[]);

    org.unavailable_next(2);
    let (result, pages) = list(&lister).await;
    result.expect("listed after two 503s");
    assert_eq!(pages.ids().len(), 1);
    assert_eq!(org.query_requests().len(), 3);

    // Retry::immediate() allows 3 retries: 4 tries, then the 503 is the run's error.
    org.unavailable_next(10);
    let (result, _) = list(&lister).await;
    let error = result.expect_err("still unavailable");
    assert!(
        matches!(
            error,
            ListError::Fetch(FetchError::Transient {
                status: Some(503),
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(org.query_requests().len(), 3 + 4);
}

#[tokio::test]
async fn listed_contacts_carry_the_company_field_and_the_owners_member() {
    // Arrange: the same field mapping as the outbound message's, company_field included.
    let org = FakeSalesforce::start().await;
    org.add_contact(
        "003Owned",
        "2026-12-01T09:00:00Z",
        json!({"Email": "Ada@Example.com", "FirstName": "Ada", "LastName": "Lovelace",
               "Phone": "+44 20 7946 0000", "OwnerId": OWNER,
               "Account_Name__c": "Analytical Engines", "Account": {"Name": "Not this one"}}),
    );
    org.add_contact(
        "003NoMail",
        "2026-12-01T10:00:00Z",
        json!({"FirstName": "No", "OwnerId": OWNER}),
    );
    let lister = lister(
        &org,
        &[
            (
                "BRIDGE__SOURCES__SALESFORCE__COMPANY_FIELD",
                "Account_Name__c".into(),
            ),
            (
                "BRIDGE__SOURCES__SALESFORCE__OWNER_MEMBERS__005HN00000ABCDEIAH",
                MEMBER.to_string(),
            ),
        ],
    );

    // Act
    let (result, pages) = list(&lister).await;

    // Assert
    result.expect("listed");
    assert!(org.soql()[0].contains(", CreatedDate, Account_Name__c FROM Contact"));
    let listed = &pages.0[0];
    let ListedContact::Guest { email, event } = &listed[0].contact else {
        panic!("a guest: {listed:?}")
    };
    assert_eq!(email, "ada@example.com");
    let StoredEvent::Guest { guest } = event else {
        panic!("a guest event")
    };
    assert_eq!(guest.company_name.as_deref(), Some("Analytical Engines"));
    assert_eq!(guest.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(guest.phone_1.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(guest.associated_members, Some(vec![MEMBER]));
    assert_eq!(
        listed[1].contact,
        ListedContact::Refused {
            field: "Email".into(),
            code: "missing_field"
        }
    );
}
