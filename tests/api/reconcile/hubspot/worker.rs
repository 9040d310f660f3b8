//! What the worker makes of HubSpot's contacts: an email added later reaches a contact it refused,
//! and a contact's owner becomes the guest's associated member.

use super::*;

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
