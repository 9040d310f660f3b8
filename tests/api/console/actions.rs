//! What the console changes: retry and cancel of one row, and by filter after a confirmation
//! that counts the rows; each audited as `console`, each refused without the session's CSRF
//! token, and a retried row delivered by the worker through the sandbox.

use serde_json::json;
use tallyfy_sandbox::SandboxConfig;

use super::{Console, audit_rows, console_app, location, state_of};
use crate::admin::{Seed, admin_env, seed};

const T0: i64 = 1_796_119_200_000;

fn seeded<'a>(source: &'a str, email: &'a str, state: &'a str) -> Seed<'a> {
    Seed {
        source,
        email,
        state,
        received_at: T0,
    }
}

#[tokio::test]
async fn a_failed_row_retried_in_the_console_is_delivered_through_the_sandbox() {
    let env = admin_env(SandboxConfig::default(), &[]).await;
    let id = env.post(json!({"email": "retry-me@example.com"})).await;
    sqlx::query("UPDATE outbox SET state = 'failed', last_error = 'gave up' WHERE id = $1")
        .bind(id)
        .execute(&env.db)
        .await
        .expect("failed");
    let console = Console::login(&env.app).await;

    // The row page offers a retry.
    let (status, html) = console.page(&format!("/console/deliveries/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<dd id=\"state\">failed</dd>"), "{html}");
    assert!(html.contains("id=\"retry-submit\""), "{html}");

    let response = console
        .submit(&format!("/console/deliveries/{id}/retry"), &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let back = location(&response).expect("back to the row");
    assert!(
        back.starts_with(&format!("/console/deliveries/{id}")),
        "{back}"
    );
    let (_, html) = console.page(&back).await;
    assert!(html.contains("id=\"flash\""), "{html}");
    assert!(html.contains("<dd id=\"state\">queued</dd>"), "{html}");

    env.catch_up();
    assert_eq!(env.drain().await, 1);
    assert_eq!(env.row(id).await.state, "delivered");
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].email, "retry-me@example.com");
    assert_eq!(
        audit_rows(&env.db).await,
        vec![("retry".into(), Some(id.to_string()), 1, "console".into())]
    );
}

#[tokio::test]
async fn a_missing_or_wrong_csrf_token_is_403_and_changes_nothing() {
    let app = console_app().await;
    let db = app.db().await;
    let ids = seed(&db, &[seeded("hubspot", "csrf@example.com", "failed")]).await;
    let console = Console::login(&app).await;
    let other = Console::login(&app).await;
    let retry = format!("/console/deliveries/{}/retry", ids[0]);
    let cancel = format!("/console/deliveries/{}/cancel", ids[0]);
    let bulk = [("action", "retry"), ("state", "failed")];

    for csrf in [None, Some("wrong"), Some(""), Some(other.csrf.as_str())] {
        let with = |fields: &[(&'static str, &'static str)]| {
            let mut all: Vec<(&str, &str)> = fields.to_vec();
            if let Some(csrf) = csrf {
                all.push(("csrf", csrf));
            }
            all
        };
        for (path, fields) in [
            (retry.as_str(), with(&[])),
            (cancel.as_str(), with(&[])),
            ("/console/bulk", with(&bulk)),
        ] {
            let response = console.post(path, &fields).await;
            assert_eq!(response.status().as_u16(), 403, "{path} {csrf:?}");
        }
    }
    assert_eq!(state_of(&db, ids[0]).await, "failed");
    assert!(audit_rows(&db).await.is_empty());
}

#[tokio::test]
async fn cancel_ends_a_waiting_row_and_a_refused_change_says_so() {
    let app = console_app().await;
    let db = app.db().await;
    let ids = seed(
        &db,
        &[
            seeded("hubspot", "wait@example.com", "queued"),
            seeded("hubspot", "done@example.com", "delivered"),
        ],
    )
    .await;
    let console = Console::login(&app).await;

    let response = console
        .submit(&format!("/console/deliveries/{}/cancel", ids[0]), &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(state_of(&db, ids[0]).await, "cancelled");
    let (_, html) = console
        .page(&format!("/console/deliveries/{}", ids[0]))
        .await;
    assert!(html.contains("<dd id=\"state\">cancelled</dd>"), "{html}");
    // A cancelled row may be retried, not cancelled again.
    assert!(html.contains("id=\"retry\""), "{html}");
    assert!(!html.contains("id=\"cancel\""), "{html}");

    // A delivered row offers neither, and a forged cancel is refused by its state.
    let (_, html) = console
        .page(&format!("/console/deliveries/{}", ids[1]))
        .await;
    assert!(!html.contains("id=\"retry\"") && !html.contains("id=\"cancel\""));
    let response = console
        .submit(&format!("/console/deliveries/{}/cancel", ids[1]), &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let (_, html) = console.page(&location(&response).expect("back")).await;
    assert!(
        html.contains("id=\"flash\"") && html.contains("Not cancelled"),
        "{html}"
    );
    assert_eq!(state_of(&db, ids[1]).await, "delivered");

    let response = console
        .submit("/console/deliveries/99999/cancel", &[])
        .await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        audit_rows(&db).await,
        vec![(
            "cancel".into(),
            Some(ids[0].to_string()),
            1,
            "console".into()
        )]
    );
}

#[tokio::test]
async fn the_bulk_confirmation_counts_exactly_the_rows_the_change_moves() {
    let app = console_app().await;
    let db = app.db().await;
    let mut seeds: Vec<Seed> = (0..7)
        .map(|_| seeded("hubspot", "bulk@example.com", "failed"))
        .collect();
    seeds.extend((0..2).map(|_| seeded("pipedrive", "bulk@example.com", "failed")));
    seeds.extend((0..3).map(|_| seeded("hubspot", "bulk@example.com", "delivered")));
    seed(&db, &seeds).await;
    let console = Console::login(&app).await;

    // The list offers the bulk forms for its filter.
    let (_, html) = console
        .page("/console/deliveries?state=failed&source=hubspot")
        .await;
    assert!(html.contains("id=\"bulk-retry\"") && html.contains("id=\"bulk-cancel\""));
    assert_eq!(html.matches("data-state=\"failed\"").count(), 7);

    let (status, html) = console
        .page("/console/bulk?action=retry&state=failed&source=hubspot")
        .await;
    assert_eq!(status, 200, "{html}");
    let count = html
        .split("id=\"confirm-count\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .expect("confirm-count");
    assert!(count.contains(" 7 "), "{count}");
    assert!(html.contains("id=\"confirm-submit\""));

    let response = console
        .submit(
            "/console/bulk",
            &[
                ("action", "retry"),
                ("state", "failed"),
                ("source", "hubspot"),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let done = location(&response).expect("done page");
    assert!(done.contains("moved=7"), "{done}");
    let (_, html) = console.page(&done).await;
    assert!(
        html.contains("id=\"flash\"") && html.contains("Retried 7 rows"),
        "{html}"
    );

    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'queued'")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(queued, 7);
    assert_eq!(
        audit_rows(&db).await,
        vec![("bulk_retry".into(), None, 7, "console".into())]
    );

    // Nothing left to retry there; a state the action does not apply to is a 400 naming it.
    let (_, html) = console
        .page("/console/bulk?action=retry&state=failed&source=hubspot")
        .await;
    assert!(html.contains("This will retry 0 rows"), "{html}");
    let (status, html) = console
        .page("/console/bulk?action=retry&state=delivered")
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("state"), "{html}");
    let (status, _) = console
        .page("/console/bulk?action=explode&state=failed")
        .await;
    assert_eq!(status, 400);
    let response = console
        .submit(
            "/console/bulk",
            &[("action", "cancel"), ("state", "failed"), ("sorce", "x")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn the_list_pages_with_the_admin_apis_cursor() {
    let app = console_app().await;
    let db = app.db().await;
    let seeds: Vec<Seed> = (0..5)
        .map(|i| Seed {
            received_at: T0 + i * 1000,
            ..seeded("hubspot", "page@example.com", "retrying")
        })
        .collect();
    let ids = seed(&db, &seeds).await;
    let console = Console::login(&app).await;

    let mut seen = Vec::new();
    let mut path = "/console/deliveries?state=retrying&limit=2".to_owned();
    loop {
        let (status, html) = console.page(&path).await;
        assert_eq!(status, 200, "{html}");
        for part in html.split("<tr data-id=\"").skip(1) {
            let id: i64 = part
                .split('"')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("id");
            seen.push(id);
        }
        let Some(next) = html.split("id=\"next-page\" href=\"").nth(1) else {
            break;
        };
        path = next.split('"').next().expect("href").replace("&amp;", "&");
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // Retrying rows may be cancelled in bulk, not retried.
    let (_, html) = console.page("/console/deliveries?state=retrying").await;
    assert!(html.contains("id=\"bulk-cancel\"") && !html.contains("id=\"bulk-retry\""));
    let (status, html) = console.page("/console/deliveries?sate=failed").await;
    assert_eq!(status, 400);
    assert!(html.contains("sate"), "{html}");
}
