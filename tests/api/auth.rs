//! Inbound authentication over HTTP: signatures (valid, forged, stale, future, rotated), shared
//! secrets, explicit no-auth; a refusal says nothing useful to an attacker and stores nothing.

use base64::Engine;
use serde_json::Value;

use crate::helpers::{
    SIGNING_SECRET, TestApp, error_of, sign, sign_with, spawn_app, spawn_app_with,
};

const BODY: &str = r#"{"email":"grace@example.com"}"#;

async fn post_with(app: &TestApp, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/webhooks/contacts", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("sent")
}

fn signed(id: &str, timestamp: i64, signature: String) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

async fn assert_refused(response: reqwest::Response) {
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["code"], "unauthorized");
    assert_eq!(error["message"], "authentication failed");
}

#[tokio::test]
async fn a_correct_signature_is_accepted() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let response = post_with(&app, &signed("msg_1", now, sign("msg_1", now, BODY)), BODY).await;
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn forged_missing_stale_and_future_signatures_are_refused() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let other_secret = "whsec_b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcg==";
    let cases = [
        signed("msg_1", now, sign_with(other_secret, "msg_1", now, BODY)),
        signed(
            "msg_1",
            now,
            sign("msg_1", now, r#"{"email":"mallory@example.com"}"#),
        ),
        signed("msg_2", now, sign("msg_1", now, BODY)),
        signed("msg_1", now - 400, sign("msg_1", now - 400, BODY)),
        signed("msg_1", now + 400, sign("msg_1", now + 400, BODY)),
        signed("msg_1", now, "v1,not-base64".into()),
        vec![
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", now.to_string()),
        ],
        vec![],
    ];
    for headers in cases {
        assert_refused(post_with(&app, &headers, BODY).await).await;
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn timestamps_within_five_minutes_either_way_are_accepted() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    for (n, ts) in [now - 280, now + 280].into_iter().enumerate() {
        let id = format!("msg_skew_{n}");
        let response = post_with(&app, &signed(&id, ts, sign(&id, ts, BODY)), BODY).await;
        assert_eq!(response.status().as_u16(), 202, "{ts}");
    }
}

#[tokio::test]
async fn a_sender_rotating_keys_may_send_several_signatures() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let old = sign_with("whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xk", "msg_r", now, BODY);
    let current = sign("msg_r", now, BODY);
    let response = post_with(
        &app,
        &signed("msg_r", now, format!("{old} {current}")),
        BODY,
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn the_signature_covers_the_raw_bytes_not_a_reserialisation() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    // Odd spacing and key order: re-serialising would change the bytes and break the MAC.
    let body = "{ \"first_name\" : \"Grace\",\n  \"email\":\"grace@example.com\" }";
    let response = post_with(
        &app,
        &signed("msg_raw", now, sign("msg_raw", now, body)),
        body,
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
}

async fn shared_secret_app() -> TestApp {
    spawn_app_with(&[
        ("BRIDGE__INGEST__AUTH__MODE", "shared_secret".into()),
        (
            "BRIDGE__INGEST__AUTH__SHARED_SECRET",
            "crm-shared-secret".into(),
        ),
    ])
    .await
}

#[tokio::test]
async fn a_shared_secret_works_as_bearer_or_basic() {
    let app = shared_secret_app().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("crm:crm-shared-secret");
    for (n, authorization) in [
        "Bearer crm-shared-secret".to_string(),
        format!("Basic {basic}"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(r#"{{"email":"grace{n}@example.com"}}"#);
        let response = post_with(&app, &[("authorization", authorization)], &body).await;
        assert_eq!(response.status().as_u16(), 202);
    }
}

#[tokio::test]
async fn a_wrong_or_missing_shared_secret_is_refused() {
    let app = shared_secret_app().await;
    let wrong_basic = base64::engine::general_purpose::STANDARD.encode("crm:guess");
    for headers in [
        vec![("authorization", "Bearer guess".to_string())],
        vec![("authorization", format!("Basic {wrong_basic}"))],
        vec![("authorization", "crm-shared-secret".to_string())],
        vec![],
    ] {
        assert_refused(post_with(&app, &headers, BODY).await).await;
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn auth_mode_none_accepts_unsigned_requests_only_when_configured() {
    let app = spawn_app_with(&[("BRIDGE__INGEST__AUTH__MODE", "none".into())]).await;
    let response = post_with(&app, &[], BODY).await;
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn secrets_appear_in_no_response() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let forged = post_with(&app, &signed("msg_1", now, "v1,AAAA".into()), BODY).await;
    let refused: Value = forged.json().await.expect("json");
    let status: Value = app.get("/status").await.json().await.expect("json");
    let secret_core = SIGNING_SECRET.trim_start_matches("whsec_");
    for body in [refused.to_string(), status.to_string()] {
        assert!(!body.contains(secret_core), "{body}");
    }
}

#[tokio::test]
async fn the_admin_token_is_read_by_the_same_authorization_parser_as_webhooks() {
    let app = spawn_app_with(&[("BRIDGE__ADMIN__TOKEN", "admin-secret-for-tests".into())]).await;
    let get = |value: &'static str| {
        app.client
            .get(format!("{}/deliveries/1", app.address))
            .header("authorization", value)
            .send()
    };

    // Past authentication, there is no delivery 1.
    for value in [
        "Bearer admin-secret-for-tests",
        "bearer admin-secret-for-tests",
        "BEARER  admin-secret-for-tests",
    ] {
        let response = get(value).await.expect("sent");
        assert_eq!(response.status().as_u16(), 404, "{value}");
    }
    for value in [
        "Bearer wrong",
        "Basic admin-secret-for-tests",
        "admin-secret-for-tests",
    ] {
        assert_refused(get(value).await.expect("sent")).await;
    }
}
