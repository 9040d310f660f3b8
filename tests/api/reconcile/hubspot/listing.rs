//! The contact search as a reconcile runs it: pages in creation order, a window split under the
//! result cap, 429s waited out (and given up on), the pace kept, owners and refusals listed.

use super::*;

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
    // Sent 60 ms apart; arrivals jitter by a few ms either way (the exact pace is the pacer's
    // unit test, on a paused clock). Unpaced, the three would arrive within a few ms.
    let gaps = fake.search_gaps();
    assert_eq!(gaps.len(), 2);
    let span: Duration = gaps.iter().sum();
    assert!(span >= Duration::from_millis(110), "{gaps:?}");
    for gap in gaps {
        assert!(gap >= Duration::from_millis(40), "{gap:?}");
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
