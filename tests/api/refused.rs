//! Refused CRM items are kept: every item a CRM sent that the bridge did not queue (no email, an
//! invalid one, a contact the CRM says has none) is stored before the CRM's answer, listed by
//! `GET /refused` (filters, keyset pages) and counted in `/status`, with ids only.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::durability::hold_write_lock;
use crate::helpers::{TestApp, error_of, spawn_app};
use crate::sources::{
    Bridge as _, SALESFORCE_ORG_18, crm_env_with, hubspot, item_statuses, pipedrive, salesforce,
    spawn_crm_app_with,
};

const ADMIN_TOKEN: &str = "admin-secret-for-refused-tests";
/// Invalid addresses the tests send: none of them may be kept.
const BAD_EMAILS: [&str; 3] = [
    "grace hopper@navy.example",
    "ada lovelace@engines.example",
    "not-an-address",
];

fn admin() -> [(&'static str, String); 1] {
    [("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN.into())]
}

async fn get_refused(app: &TestApp, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}/refused?{query}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// One page of `GET /refused?{query}`, which must answer 200.
async fn page(app: &TestApp, query: &str) -> Value {
    let response = get_refused(app, query, Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status().as_u16(), 200, "{query}");
    response.json().await.expect("JSON page")
}

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

async fn refused_in_status(app: &TestApp) -> Value {
    let status: Value = app.get("/status").await.json().await.expect("status");
    status["refused"].clone()
}

/// A Pipedrive v1 person `id` whose email list is `emails`.
fn pipedrive_person(id: u64, emails: Value) -> Value {
    let mut person = pipedrive::v1_added_person(id, "unused@example.com");
    person["current"]["email"] = emails;
    person
}

async fn post_salesforce(app: &TestApp, notifications: &[String]) {
    let message = salesforce::message(SALESFORCE_ORG_18, notifications);
    let (status, answer) = salesforce::answer(salesforce::post(app, &message).await).await;
    assert_eq!((status, answer), (200, Ok(())));
}

/// The refusal of `field` for CRM record `record_id`.
fn refusal_of<'a>(items: &'a [Value], field: &str, record_id: &Value) -> &'a Value {
    items
        .iter()
        .find(|item| item["field"] == field && item["record_id"] == *record_id)
        .unwrap_or_else(|| panic!("no refusal of {field} {record_id} in {items:?}"))
}

/// Every column of every refused row, as text.
async fn refused_table(app: &TestApp) -> String {
    let db = app.db().await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', id, source, event_id, record_id, notification_id, reason, field,
                          outbox_id, refused_at) FROM refused",
    )
    .fetch_all(&db)
    .await
    .expect("refused rows");
    db.close().await;
    rows.join("\n")
}

#[tokio::test]
async fn items_of_every_crm_without_a_usable_email_are_kept_listed_and_counted() {
    // Arrange
    let (app, _crm) = spawn_crm_app_with(&admin()).await;

    // Act: Pipedrive persons without an email and with an invalid one, HubSpot events naming no
    // contact, Salesforce Contacts without an email and with an invalid one.
    let items = pipedrive::post_person(&app, &pipedrive_person(4711, json!([]))).await;
    assert_eq!(items[0]["status"], "rejected");
    let invalid = json!([{"value": BAD_EMAILS[0], "primary": true}]);
    pipedrive::post_person(&app, &pipedrive_person(4712, invalid)).await;
    let mut no_portal = hubspot::creation(5013);
    no_portal.as_object_mut().expect("event").remove("portalId");
    let mut no_object = hubspot::creation(5014);
    no_object.as_object_mut().expect("event").remove("objectId");
    let events = json!([hubspot::creation(5012), no_portal, no_object]);
    let statuses = item_statuses(hubspot::post_signed(&app, &events).await).await;
    assert_eq!(statuses[0]["status"], "queued");
    post_salesforce(
        &app,
        &[
            salesforce::contact("04l1", ""),
            salesforce::contact("04l2", BAD_EMAILS[1]),
        ],
    )
    .await;

    // Assert: six refusals, each with its CRM's ids, reason and field, newest first.
    let body = page(&app, "").await;
    assert_eq!(body["next_cursor"], Value::Null);
    let items = body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 6, "{items:?}");
    let sources: Vec<&str> = items.iter().filter_map(|i| i["source"].as_str()).collect();
    assert_eq!(
        sources,
        [
            "salesforce",
            "salesforce",
            "hubspot",
            "hubspot",
            "pipedrive",
            "pipedrive"
        ]
    );
    let expected = [
        (
            "current.email",
            json!({"source": "pipedrive", "event_id": "7654321:person:4711:created",
                   "record_id": "4711", "notification_id": null, "reason": "missing_field",
                   "outbox_id": null}),
        ),
        (
            "[1].portalId",
            json!({"source": "hubspot", "event_id": "-:5013:event:1000005013", "record_id": "5013",
                   "notification_id": null, "reason": "missing_field", "outbox_id": null}),
        ),
        (
            "[2].objectId",
            json!({"source": "hubspot", "event_id": "62515:-:event:1000005014", "record_id": null,
                   "notification_id": null, "reason": "missing_field", "outbox_id": null}),
        ),
        (
            "Notification[0].sObject.Email",
            json!({"source": "salesforce", "event_id": "04l1", "record_id": "00304l1",
                   "notification_id": "04l1", "reason": "missing_field", "outbox_id": null}),
        ),
        (
            "Notification[1].sObject.Email",
            json!({"source": "salesforce", "event_id": "04l2", "record_id": "00304l2",
                   "notification_id": "04l2", "reason": "invalid_email", "outbox_id": null}),
        ),
    ];
    for (field, want) in expected {
        let item = refusal_of(&items, field, &want["record_id"]);
        for (key, value) in want.as_object().expect("object") {
            assert_eq!(&item[key], value, "{field}.{key}: {item}");
        }
        let at = item["refused_at"].as_str().expect("a time");
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
    let pipedrive_invalid = refusal_of(&items, "current.email", &json!("4712"));
    assert_eq!(pipedrive_invalid["reason"], "invalid_email");

    // Counted in /status; nothing of an email kept or shown, nothing queued for them.
    assert_eq!(
        refused_in_status(&app).await,
        json!({"total": 6, "by_source": [
            {"source": "hubspot", "reason": "missing_field", "n": 2},
            {"source": "pipedrive", "reason": "invalid_email", "n": 1},
            {"source": "pipedrive", "reason": "missing_field", "n": 1},
            {"source": "salesforce", "reason": "invalid_email", "n": 1},
            {"source": "salesforce", "reason": "missing_field", "n": 1},
        ]})
    );
    let (table, listed) = (refused_table(&app).await, body.to_string());
    for email in BAD_EMAILS.iter().chain(&["@"]) {
        assert!(!table.contains(email), "{email} in {table}");
        assert!(!listed.contains(email), "{email} in {listed}");
    }
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn a_crm_sending_the_same_refused_item_again_keeps_one_refusal() {
    let (app, _crm) = spawn_crm_app_with(&admin()).await;
    let person = pipedrive_person(4711, json!([]));
    let notifications = [salesforce::contact("04l9", "")];
    let mut no_object = hubspot::creation(1);
    no_object.as_object_mut().expect("event").remove("objectId");
    for attempt in 0..3 {
        let items = pipedrive::post_person(&app, &person).await;
        assert_eq!(items[0]["status"], "rejected");
        post_salesforce(&app, &notifications).await;
        no_object["attemptNumber"] = json!(attempt);
        let items = item_statuses(hubspot::post_signed(&app, &json!([no_object])).await).await;
        assert_eq!(items[0]["status"], "rejected");
    }
    // Copies in one group commit too.
    let copies = (0..10).map(|_| pipedrive::post_person(&app, &person));
    for items in futures_util::future::join_all(copies).await {
        assert_eq!(items[0]["status"], "rejected");
    }

    let items = page(&app, "").await["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(3), "{items}");
    assert_eq!(refused_in_status(&app).await["total"], 3);
}

#[tokio::test]
async fn a_hubspot_contact_whose_record_has_no_usable_email_is_refused_and_its_row_fails() {
    // Arrange
    let (env, hubspot_api) = crm_env_with(&admin()).await;
    hubspot_api.add_contact(
        "9",
        json!({"email": null, "firstname": "No", "lastname": "Mail"}),
    );
    hubspot_api.add_contact("10", json!({"email": BAD_EMAILS[2], "firstname": "Bad"}));
    let events = json!([hubspot::creation(9), hubspot::creation(10)]);
    let items = item_statuses(hubspot::post_signed(&env.app, &events).await).await;
    let ids: Vec<i64> = items.iter().filter_map(|i| i["id"].as_i64()).collect();
    assert_eq!(ids.len(), 2, "{items:?}");
    env.catch_up();

    // Act
    env.drain().await;

    // Assert: both rows failed, no create, one refusal each naming its row.
    for id in &ids {
        assert_eq!(env.row(*id).await.state, "failed");
    }
    assert_eq!(env.posts(), 0);
    let listed = page(&env.app, "source=hubspot").await;
    let refusals = listed["items"].as_array().expect("items").clone();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    for (record_id, reason, id) in [
        ("9", "no_email_in_crm", ids[0]),
        ("10", "invalid_email", ids[1]),
    ] {
        let refusal = refusals
            .iter()
            .find(|r| r["record_id"] == record_id)
            .unwrap_or_else(|| panic!("{record_id}: {refusals:?}"));
        assert_eq!(refusal["reason"], reason);
        assert_eq!(refusal["field"], "properties.email");
        assert_eq!(refusal["outbox_id"], id);
        assert_eq!(refusal["event_id"], format!("62515:{record_id}:created"));
    }
    assert!(!listed.to_string().contains(BAD_EMAILS[2]), "{listed}");
    assert!(!refused_table(&env.app).await.contains(BAD_EMAILS[2]));
    let status = refused_in_status(&env.app).await;
    assert_eq!(status["total"], 2, "{status}");

    // An operator's retry (the row made due again) that finds the same record keeps one refusal.
    sqlx::query("UPDATE outbox SET state = 'queued', next_attempt_at = 0 WHERE id = ?1")
        .bind(ids[0])
        .execute(&env.db)
        .await
        .expect("requeue");
    assert_eq!(env.drain().await, 1);
    assert_eq!(env.row(ids[0]).await.state, "failed");
    assert_eq!(refused_in_status(&env.app).await["total"], 2);
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
        assert_eq!(error["code"], "invalid_parameter", "{query}");
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

#[tokio::test]
async fn a_refusal_that_cannot_be_stored_gets_503_and_is_kept_when_resent() {
    // Arrange: another process holds the write lock past the busy timeout.
    let mut overrides = admin().to_vec();
    overrides.push(("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "100".into()));
    let (app, _crm) = spawn_crm_app_with(&overrides).await;
    let person = pipedrive_person(4711, json!([]));
    let lock = hold_write_lock(&app).await;

    // Act
    let response = app
        .post_source("pipedrive", &pipedrive::auth(), person.to_string())
        .await;

    // Assert: the CRM is told to retry, nothing is kept; its retry is.
    assert!(response.headers().contains_key("retry-after"));
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].as_str()), (503, Some("unavailable")));
    lock.release().await;
    assert_eq!(refused_table(&app).await, "");
    let items = pipedrive::post_person(&app, &person).await;
    assert_eq!(items[0]["status"], "rejected");
    assert_eq!(refused_in_status(&app).await["total"], 1);
}
