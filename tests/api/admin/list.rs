//! `GET /deliveries`: filters, keyset pages without gaps or repeats, 400s that name the field,
//! and the admin token's 404/401 on every new endpoint.

use std::collections::HashSet;

use serde_json::json;

use super::{Seed, TOKEN, admin_app, get, ids, seed};
use crate::helpers::spawn_app;

/// 2026-12-01T10:00:00Z and the minutes after it.
const T0: i64 = 1_796_119_200_000;
const MINUTE: i64 = 60_000;

fn at(minutes: i64) -> String {
    chrono::DateTime::from_timestamp_millis(T0 + minutes * MINUTE)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn every_admin_endpoint_is_absent_without_a_token_and_refuses_a_wrong_one() {
    let closed = spawn_app().await;
    let open = admin_app().await;
    for (method, path) in [
        ("GET", "/deliveries"),
        ("GET", "/audit"),
        ("POST", "/deliveries/1/retry"),
        ("POST", "/deliveries/1/cancel"),
        ("POST", "/deliveries/retry"),
        ("POST", "/deliveries/cancel"),
    ] {
        for (app, token, expected) in [(&closed, TOKEN, 404), (&open, "wrong", 401)] {
            let request = match method {
                "GET" => app.client.get(format!("{}{path}", app.address)),
                _ => app
                    .client
                    .post(format!("{}{path}", app.address))
                    .json(&json!({"state": "failed"})),
            };
            let response = request.bearer_auth(token).send().await.expect("sent");
            assert_eq!(response.status().as_u16(), expected, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn filters_select_by_state_source_email_and_received_time() {
    let app = admin_app().await;
    let db = app.db().await;
    let rows = seed(
        &db,
        &[
            Seed {
                source: "hubspot",
                email: "a@example.com",
                state: "failed",
                received_at: T0,
            },
            Seed {
                source: "hubspot",
                email: "b@example.com",
                state: "delivered",
                received_at: T0 + MINUTE,
            },
            Seed {
                source: "pipedrive",
                email: "a@example.com",
                state: "failed",
                received_at: T0 + 2 * MINUTE,
            },
            Seed {
                source: "pipedrive",
                email: "c@example.com",
                state: "queued",
                received_at: T0 + 3 * MINUTE,
            },
        ],
    )
    .await;
    let [r0, r1, r2, r3] = rows[..] else {
        panic!("four rows")
    };

    for (query, expected) in [
        (String::new(), vec![r3, r2, r1, r0]),
        ("state=failed".into(), vec![r2, r0]),
        ("source=hubspot".into(), vec![r1, r0]),
        // Normalised as ingest stores it.
        ("email=%20A%40Example.COM".into(), vec![r2, r0]),
        ("email=a%40example.com&source=pipedrive".into(), vec![r2]),
        ("state=failed&source=hubspot".into(), vec![r0]),
        (format!("since={}", at(1)), vec![r3, r2, r1]),
        (format!("until={}", at(1)), vec![r0]),
        (
            format!("since={}&until={}&state=failed", at(1), at(3)),
            vec![r2],
        ),
        ("state=cancelled".into(), vec![]),
    ] {
        let (status, body) = get(&app, &format!("/deliveries?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(ids(&body), expected, "{query}");
        assert!(body["next_cursor"].is_null(), "{query}: {body}");
    }
    let (_, body) = get(&app, "/deliveries?state=failed&limit=1").await;
    let item = &body["items"][0];
    assert_eq!(item["state"], "failed");
    assert_eq!(item["source"], "pipedrive");
    assert_eq!(item["received_at"], at(2).as_str());
}

#[tokio::test]
async fn pages_cover_every_row_once_newest_first_even_with_equal_times() {
    let app = admin_app().await;
    let db = app.db().await;
    // 23 rows over 8 distinct times: most pages end inside a run of equal received_at.
    let seeds: Vec<Seed> = (0..23)
        .map(|n| Seed {
            source: "canonical",
            email: "same@example.com",
            state: if n % 2 == 0 { "failed" } else { "delivered" },
            received_at: T0 + (n / 3) * MINUTE,
        })
        .collect();
    let all = seed(&db, &seeds).await;

    for filter in [
        "",
        "state=failed&",
        "email=same%40example.com&",
        "source=canonical&",
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let (status, body) = get(&app, &format!("/deliveries?{filter}limit=4{after}")).await;
            assert_eq!(status, 200, "{body}");
            let items = body["items"].as_array().expect("items").clone();
            assert!(items.len() <= 4);
            seen.extend(items.iter().map(|item| {
                (
                    item["received_at"].as_str().expect("time").to_owned(),
                    item["id"].as_i64().expect("id"),
                )
            }));
            pages += 1;
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let expected: Vec<i64> = all
            .iter()
            .copied()
            .filter(|id| filter != "state=failed&" || (id - all[0]) % 2 == 0)
            .rev()
            .collect();
        let seen_ids: Vec<i64> = seen.iter().map(|(_, id)| *id).collect();
        assert_eq!(
            seen_ids, expected,
            "{filter}: newest first, no gap, no repeat"
        );
        assert_eq!(
            seen_ids.iter().collect::<HashSet<_>>().len(),
            seen_ids.len()
        );
        assert_eq!(pages, expected.len().div_ceil(4), "{filter}");
        // Newest first by (received_at, id): RFC 3339 in UTC sorts as text.
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{filter}: {seen:?}");
    }
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_field() {
    let app = admin_app().await;
    for (query, field) in [
        ("state=lost", "state"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=many", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("source=", "source"),
        ("stat=failed", "query"),
    ] {
        let (status, body) = get(&app, &format!("/deliveries?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, body) = get(&app, "/audit?limit=0").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit"))
    );
}
