//! Refused CRM items are kept: every item a CRM sent that the bridge did not queue (no email, an
//! invalid one, a contact the CRM says has none) is stored before the CRM's answer, listed by
//! `GET /refused` (filters, keyset pages) and counted in `/status`, with ids only.

use serde_json::{Value, json};

use crate::durability::hold_write_lock;
use crate::helpers::{TestApp, error_of};
use crate::sources::{
    Bridge as _, SALESFORCE_ORG_18, crm_env_with, hubspot, item_statuses, pipedrive, salesforce,
    spawn_crm_app_with,
};

mod listing;

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
    sqlx::query("UPDATE outbox SET state = 'queued', next_attempt_at = 0 WHERE id = $1")
        .bind(ids[0])
        .execute(&env.db)
        .await
        .expect("requeue");
    assert_eq!(env.drain().await, 1);
    assert_eq!(env.row(ids[0]).await.state, "failed");
    assert_eq!(refused_in_status(&env.app).await["total"], 2);
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

#[tokio::test]
async fn the_command_line_lists_refused_items_as_a_table_and_as_json() {
    let (app, _crm) = spawn_crm_app_with(&admin()).await;
    pipedrive::post_person(&app, &pipedrive_person(4811, json!([]))).await;
    let invalid = json!([{"value": BAD_EMAILS[2], "primary": true}]);
    pipedrive::post_person(&app, &pipedrive_person(4812, invalid)).await;
    let run = |args: &'static [&'static str]| {
        let mut command = std::process::Command::new(crate::binary::BINARY);
        command
            .env_clear()
            .env("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN)
            .args(args)
            .args(["--url", &app.address]);
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
    };

    let table = run(&["refused", "list", "--source", "pipedrive"])
        .await
        .expect("joined");
    assert!(table.status.success(), "{table:?}");
    let table = String::from_utf8(table.stdout).expect("utf-8");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("REASON"),
        "{table}"
    );
    assert!(
        lines[1].contains("4812") && lines[1].contains("invalid_email"),
        "{table}"
    );
    assert!(lines[2].contains("4811"), "{table}");
    assert!(!table.contains(BAD_EMAILS[2]), "{table}");

    let json = run(&["refused", "list", "--reason", "invalid_email", "--json"])
        .await
        .expect("joined");
    assert!(json.status.success(), "{json:?}");
    let json: Value = serde_json::from_slice(&json.stdout).expect("the API's JSON");
    assert_eq!(json, page(&app, "reason=invalid_email").await);
    assert_eq!(json["items"].as_array().map(Vec::len), Some(1));
}
