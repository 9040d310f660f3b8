//! `GET /refused` as an operator pages it: every filter, pages of every size over refusals
//! that share a time, bad parameters named, and the admin token's rules.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{ADMIN_TOKEN, BAD_EMAILS, admin, get_refused, page, pipedrive_person, post_salesforce};
use crate::helpers::{TestApp, error_of, spawn_app};
use crate::sources::{hubspot, item_statuses, pipedrive, salesforce, spawn_crm_app_with};

/// Every item of `query`, following the cursors `limit` at a time.
async fn walk(app: &TestApp, query: &str, limit: usize) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query = format!("{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let body = page(app, &query).await;
        let got = body["items"].as_array().expect("items");
        assert!(got.len() <= limit, "{body}");
        items.extend(got.iter().cloned());
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn filters_and_pages_walk_every_refusal_exactly_once() {
    // Arrange: 7 Salesforce refusals in one commit (one refused_at: the id breaks the tie),
    // 3 Pipedrive and 2 HubSpot ones, a few invalid addresses among them.
    let (app, _crm) = spawn_crm_app_with(&admin()).await;
    let notifications: Vec<String> = (0..7)
        .map(|n| {
            let email = if n < 2 { BAD_EMAILS[1] } else { "" };
            salesforce::contact(&format!("04p{n}"), email)
        })
        .collect();
    post_salesforce(&app, &notifications).await;
    for id in 1..=3 {
        pipedrive::post_person(&app, &pipedrive_person(id, json!([]))).await;
    }
    let mut events = Vec::new();
    for id in [1, 2] {
        let mut event = hubspot::creation(id);
        event.as_object_mut().expect("event").remove("portalId");
        events.push(event);
    }
    item_statuses(hubspot::post_signed(&app, &json!(events)).await).await;

    // Act and Assert: every page size walks all 12 once, newest first by (refused_at, id).
    let (all, pages) = walk(&app, "", 500).await;
    assert_eq!((all.len(), pages), (12, 1));
    let keys: Vec<(String, i64)> = all
        .iter()
        .map(|i| {
            (
                i["refused_at"].as_str().expect("time").to_owned(),
                i["id"].as_i64().expect("id"),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
    for limit in [1, 2, 3, 5] {
        let (walked, pages) = walk(&app, "", limit).await;
        assert_eq!(walked, all, "limit {limit}");
        assert_eq!(pages, 12usize.div_ceil(limit), "limit {limit}");
    }

    // By source and reason, paged too.
    let ids =
        |items: &[Value]| -> Vec<i64> { items.iter().filter_map(|i| i["id"].as_i64()).collect() };
    let (salesforce, pages) = walk(&app, "source=salesforce", 2).await;
    assert_eq!((salesforce.len(), pages), (7, 4));
    assert!(salesforce.iter().all(|i| i["source"] == "salesforce"));
    let (invalid, _) = walk(&app, "reason=invalid_email", 1).await;
    assert_eq!(invalid.len(), 2);
    assert!(invalid.iter().all(|i| i["reason"] == "invalid_email"));
    let (both, _) = walk(&app, "source=pipedrive&reason=missing_field", 2).await;
    assert_eq!(both.len(), 3);
    assert!(
        walk(&app, "source=pipedrive&reason=invalid_email", 2)
            .await
            .0
            .is_empty()
    );

    // since is inclusive and until exclusive: split at one refusal's time, every item is on
    // exactly one side, and that refusal is on the `since` side.
    let pivot = &all[5];
    let at = pivot["refused_at"].as_str().expect("time");
    let encoded = at.replace('+', "%2B");
    let (after, _) = walk(&app, &format!("since={encoded}"), 4).await;
    let (before, _) = walk(&app, &format!("until={encoded}"), 4).await;
    assert!(ids(&after).contains(&pivot["id"].as_i64().expect("id")));
    assert_eq!(after.len() + before.len(), 12);
    let mut joined: Vec<i64> = ids(&after).into_iter().chain(ids(&before)).collect();
    joined.sort_unstable();
    joined.dedup();
    assert_eq!(joined.len(), 12);
    assert!(after.iter().all(|i| i["refused_at"].as_str() >= Some(at)));
    assert!(before.iter().all(|i| i["refused_at"].as_str() < Some(at)));
    let (window, _) = walk(&app, &format!("since={encoded}&until={encoded}"), 4).await;
    assert!(window.is_empty());
    let (in_salesforce, _) = walk(&app, &format!("source=salesforce&since={encoded}"), 3).await;
    let expected: HashSet<i64> = ids(&after)
        .into_iter()
        .filter(|id| ids(&salesforce).contains(id))
        .collect();
    assert_eq!(
        ids(&in_salesforce).into_iter().collect::<HashSet<_>>(),
        expected
    );
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_the_field() {
    let (app, _crm) = spawn_crm_app_with(&admin()).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-ours", "cursor"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("sorce=hubspot", "sorce"),
        ("source=hubspot&source=pipedrive", "source"),
    ] {
        let (status, error) = error_of(get_refused(&app, query, Some(ADMIN_TOKEN)).await).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["code"], "bad_request", "{query}");
        assert_eq!(error["field"], field, "{query}: {error}");
    }
}

#[tokio::test]
async fn without_an_admin_token_the_list_is_not_found_and_a_wrong_one_is_401() {
    let app = spawn_app().await;
    let (status, _) = error_of(get_refused(&app, "", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(status, 404);

    let (app, _crm) = spawn_crm_app_with(&admin()).await;
    for token in [None, Some("wrong-token"), Some(&ADMIN_TOKEN[1..])] {
        let (status, error) = error_of(get_refused(&app, "", token).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    assert_eq!(
        page(&app, "").await,
        json!({"items": [], "next_cursor": null})
    );
}
