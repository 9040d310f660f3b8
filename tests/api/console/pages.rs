//! What the pages show: the overview's figures and its chart against the database, search by
//! email with the ledger id and the attempt log, the refused list, and hostile stored values
//! coming out escaped.

use serde_json::json;
use tallyfy_sandbox::SandboxConfig;

use super::{Console, console_app};
use crate::admin::{Seed, admin_env, seed};

const HOUR: i64 = 3_600_000;

/// The `data-n` of every bar of one series.
fn bars(html: &str, class: &str) -> Vec<i64> {
    html.split(&format!("<rect class=\"{class}\""))
        .skip(1)
        .map(|rest| {
            let n = rest.split("data-n=\"").nth(1).expect("data-n");
            n.split('"')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("number")
        })
        .collect()
}

fn count_of(html: &str, state: &str) -> i64 {
    let marker = format!("data-count=\"{state}\">");
    let rest = html.split(&marker).nth(1).expect("data-count");
    rest.split('<')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("number")
}

#[tokio::test]
async fn the_overview_counts_and_chart_match_the_rows_in_the_database() {
    let app = console_app().await;
    let db = app.db().await;
    let now = chrono::Utc::now().timestamp_millis();
    let hour_start = now - now.rem_euclid(HOUR);
    // Inside the 48 hours (the current one and 47 before), and before them.
    let mut rows = Vec::new();
    for (ago_hours, state, n) in [
        (0, "queued", 3),
        (1, "delivered", 2),
        (5, "failed", 4),
        (47, "delivered", 1),
        (48, "delivered", 6),
        (100, "queued", 2),
    ] {
        for _ in 0..n {
            rows.push(Seed {
                source: "hubspot",
                email: "chart@example.com",
                state,
                received_at: hour_start - ago_hours * HOUR + 1,
            });
        }
    }
    let ids = seed(&db, &rows).await;
    // One row received long ago was delivered in the current hour: it counts as delivered now.
    sqlx::query("UPDATE outbox SET state = 'delivered', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ids[ids.len() - 1])
        .execute(&db)
        .await
        .expect("delivered now");
    let console = Console::login(&app).await;

    let (status, html) = console.page("/console").await;
    assert_eq!(status, 200);
    assert!(html.contains("<section id=\"overview\">"));
    assert!(html.contains("<svg id=\"chart\""));
    for state in [
        "queued",
        "in_flight",
        "retrying",
        "delivered",
        "failed",
        "cancelled",
    ] {
        let in_db: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = $1")
            .bind(state)
            .fetch_one(&db)
            .await
            .expect("count");
        assert_eq!(count_of(&html, state), in_db, "{state}");
    }

    let accepted = bars(&html, "accepted");
    let delivered = bars(&html, "delivered");
    assert_eq!((accepted.len(), delivered.len()), (48, 48));
    let since = hour_start - 47 * HOUR;
    let (accepted_in_db, delivered_in_db): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE received_at >= $1),
                (SELECT count(*) FROM outbox WHERE state = 'delivered' AND updated_at >= $1)",
    )
    .bind(since)
    .fetch_one(&db)
    .await
    .expect("counts");
    assert_eq!(accepted.iter().sum::<i64>(), accepted_in_db);
    assert_eq!(delivered.iter().sum::<i64>(), delivered_in_db);
    assert_eq!((accepted_in_db, delivered_in_db), (10, 4));
    // Oldest first: the last bar is the current hour.
    assert_eq!(accepted[47], 3);
    assert_eq!(delivered[47], 1);
    assert_eq!(delivered[46], 2);
    assert_eq!(accepted[0], 1);
    assert!(html.contains("<title id=\"chart-title\">"), "{html}");
}

#[tokio::test]
async fn search_by_email_shows_the_ledger_id_and_the_attempts() {
    let env = admin_env(SandboxConfig::default(), &[]).await;
    let id = env.post(json!({"email": "ada@example.com"})).await;
    env.drain().await;
    let guest_id = env.ledger("ada@example.com").await.expect("ledger");
    let console = Console::login(&env.app).await;

    let (status, html) = console
        .page("/console/search?email=%20ADA@Example.com")
        .await;
    assert_eq!(status, 200, "{html}");
    let ledger = html
        .split("<section id=\"ledger\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("ledger section");
    assert!(ledger.contains(&guest_id), "{ledger}");
    assert!(
        html.contains(&format!("<tr data-id=\"{id}\" data-state=\"delivered\">")),
        "{html}"
    );

    let (_, html) = console.page(&format!("/console/deliveries/{id}")).await;
    let attempts = html
        .split("<table id=\"attempts\">")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .expect("attempts");
    assert_eq!(
        attempts.matches("<tr>").count(),
        2,
        "a header and one attempt: {attempts}"
    );
    assert!(html.contains(&guest_id));

    let (_, html) = console
        .page("/console/search?email=nobody@example.com")
        .await;
    assert!(html.contains("No guest is recorded"), "{html}");
    let (status, _) = console.page("/console/search?email=").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn hostile_stored_values_come_out_escaped() {
    let app = console_app().await;
    let db = app.db().await;
    let hostile = "<script>alert(1)</script>@example.com";
    let ids = seed(
        &db,
        &[Seed {
            source: "<img src=x onerror=alert(2)>",
            email: hostile,
            state: "failed",
            received_at: 1_796_119_200_000,
        }],
    )
    .await;
    sqlx::query("UPDATE outbox SET last_error = '<script>alert(3)</script>' WHERE id = $1")
        .bind(ids[0])
        .execute(&db)
        .await
        .expect("error");
    sqlx::query(
        "UPDATE worker_state SET last_error = '<script>alert(4)</script>', paused_reason = '<b>x</b>'",
    )
    .execute(&db)
    .await
    .expect("worker state");
    sqlx::query(
        "INSERT INTO refused (source, record_id, reason, field, refused_at)
         VALUES ('hubspot', '<script>alert(5)</script>', 'missing_email', '\"><script>', 1)",
    )
    .execute(&db)
    .await
    .expect("refused");
    let console = Console::login(&app).await;

    for path in [
        "/console".to_owned(),
        "/console/deliveries?state=failed".to_owned(),
        format!("/console/deliveries/{}", ids[0]),
        "/console/search?email=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40example.com".to_owned(),
        "/console/refused".to_owned(),
        "/console/deliveries?source=%3Cscript%3E".to_owned(),
    ] {
        let (status, html) = console.page(&path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains("<script"), "{path}: {html}");
        assert!(!html.contains("<img"), "{path}: {html}");
        assert!(!html.contains("<b>x"), "{path}: {html}");
        assert!(html.contains("&lt;script&gt;"), "{path}: {html}");
    }
}

#[tokio::test]
async fn the_refused_list_shows_each_item_with_its_reason_and_pages() {
    let app = console_app().await;
    let db = app.db().await;
    for i in 0..3 {
        sqlx::query(
            "INSERT INTO refused (source, record_id, reason, field, refused_at)
             VALUES ('pipedrive', $1, 'invalid_email', 'email', $2)",
        )
        .bind(format!("person-{i}"))
        .bind(1_796_119_200_000_i64 + i)
        .execute(&db)
        .await
        .expect("refused");
    }
    let console = Console::login(&app).await;

    let (status, html) = console.page("/console/refused?limit=2").await;
    assert_eq!(status, 200, "{html}");
    let table = html
        .split("<table id=\"refused\">")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .expect("table");
    assert_eq!(table.matches("<tr data-id=").count(), 2);
    assert!(table.contains("person-2") && table.contains("invalid_email"));
    let next = html
        .split("id=\"next-page\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("next page")
        .replace("&amp;", "&");
    let (_, html) = console.page(&next).await;
    assert!(
        html.contains("person-0") && !html.contains("person-2"),
        "{html}"
    );
    assert!(!html.contains("id=\"next-page\""));
    let (status, _) = console.page("/console/refused?sorce=x").await;
    assert_eq!(status, 400);
    // The overview counts them per source and reason.
    let (_, html) = console.page("/console").await;
    assert!(html.contains("refused-counts") && html.contains("invalid_email"));
}
