//! The sandbox as a Tallyfy stand-in, checked with raw HTTP: header enforcement, the
//! documented guest shape, listing, and the `/_sandbox` control API.

use reqwest::Method;
use serde_json::json;

use std::time::Duration;
use tallyfy_bridge::tallyfy::CallError;

use super::helpers::{ORG, config, guest, spawn};

#[tokio::test]
async fn the_sandbox_rejects_requests_missing_a_required_header() {
    let env = spawn(config()).await;
    let body = json!({"email": "raw@example.com"});

    let without_client = env.raw_create(&body, &["x-tallyfy-client"]).await;
    let without_accept = env.raw_create(&body, &["accept"]).await;
    let without_token = env.raw_create(&body, &["authorization"]).await;
    let complete = env.raw_create(&body, &[]).await;

    assert_eq!(without_client.0, 400);
    assert!(
        without_client.1["message"]
            .as_str()
            .unwrap()
            .contains("X-Tallyfy-Client")
    );
    assert_eq!(without_accept.0, 400);
    assert_eq!(
        without_token,
        (401, json!({"error": true, "message": "Unauthenticated."}))
    );
    assert_eq!(complete.0, 201, "all headers present: {}", complete.1);
    // So a successful typed create proves the client sends every required header.
    env.client
        .create_guest(&guest("typed@example.com"))
        .await
        .unwrap();
    assert_eq!(env.sandbox.guests().len(), 2);
}

#[tokio::test]
async fn the_created_guest_has_the_documented_shape_and_unknown_fields_are_ignored() {
    let env = spawn(config()).await;

    let (status, body) = env
        .raw_create(
            &json!({"email": "Shape@Example.com", "phone": "123", "phone_1": "+1 555"}),
            &[],
        )
        .await;

    assert_eq!(status, 201);
    let data = &body["data"];
    assert!(data["id"].is_u64());
    assert_eq!(data["email"], "shape@example.com");
    assert_eq!(data["last_accessed_at"], json!(null));
    assert_eq!(data["deleted_at"], json!(null));
    assert_eq!(
        data["created_at"].as_str().unwrap().len(),
        "2025-01-15 10:30:00".len()
    );
    assert_eq!(data["details"]["phone_1"], "+1 555");
    assert_eq!(data["details"]["associated_members"], json!(null));
    assert!(data.get("phone").is_none() && data["details"].get("phone").is_none());
}

#[tokio::test]
async fn the_list_filters_by_q_and_paginates() {
    let env = spawn(config()).await;
    for email in ["a1@list.io", "a2@list.io", "a3@list.io", "b@other.io"] {
        env.client.create_guest(&guest(email)).await.unwrap();
    }

    let (status, body) = env
        .raw_get(&format!(
            "/organizations/{ORG}/guests?q=list.io&page=2&per_page=2"
        ))
        .await;

    assert_eq!(status, 200);
    assert_eq!(
        body["meta"]["pagination"],
        json!({"total": 3, "count": 1, "per_page": 2, "current_page": 2, "total_pages": 2})
    );
    assert_eq!(body["data"][0]["email"], "a3@list.io");
}

#[tokio::test]
async fn the_control_api_drives_faults_tokens_bursts_and_reset() {
    let env = spawn(config()).await;
    env.client
        .create_guest(&guest("ctl@example.com"))
        .await
        .unwrap();

    let (status, _) = env
        .control(Method::PUT, "/faults", json!({"error_rate": 1.0}))
        .await;
    assert_eq!(status, 200);
    let failed = env.client.create_guest(&guest("ctl2@example.com")).await;
    assert!(matches!(
        failed,
        Err(CallError::Transient {
            status: Some(500),
            ..
        })
    ));
    // Faults never touch the control API itself.
    let (status, stats) = env.control(Method::GET, "/stats", json!(null)).await;
    assert_eq!(
        (status, stats["faults"]["error_5xx"].clone()),
        (200, json!(1))
    );
    let (status, guests) = env.control(Method::GET, "/guests", json!(null)).await;
    assert_eq!(status, 200);
    assert_eq!(guests["data"][0]["creates"], 1);
    assert_eq!(
        env.control(Method::PUT, "/faults", json!({"error_rate": 5}))
            .await
            .0,
        400
    );

    env.control(Method::PUT, "/faults", json!({})).await;
    env.control(
        Method::POST,
        "/burst429",
        json!({"count": 1, "retry_after_secs": 3}),
    )
    .await;
    let limited = env.client.find_guest("ctl@example.com").await;
    assert_eq!(
        limited,
        Err(CallError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        })
    );
    env.control(Method::PUT, "/token", json!({"token": "new"}))
        .await;
    let unauthorized = env.client.find_guest("ctl@example.com").await;
    assert_eq!(unauthorized, Err(CallError::Unauthorized { status: 401 }));

    assert_eq!(
        env.control(Method::POST, "/reset", json!(null)).await.0,
        200
    );
    assert!(env.sandbox.guests().is_empty());
    assert_eq!(env.sandbox.stats().creates, 0);
    assert_eq!(
        env.client.find_guest("ctl@example.com").await,
        Ok(None),
        "token restored"
    );
}

#[tokio::test]
async fn the_token_endpoint_takes_forms_on_both_paths_and_its_tokens_expire_on_demand() {
    let env = spawn(config()).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "sandbox-client"),
        ("client_secret", "sandbox-client-secret"),
    ];
    let ask = |path: &'static str| env.http.post(env.url(path)).form(&form).send();

    let issued: serde_json::Value = ask("/oauth/token").await.unwrap().json().await.unwrap();
    let other_path = ask("/api/oauth/token").await.unwrap().status().as_u16();
    let as_json = env
        .http
        .post(env.url("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();

    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 3600);
    let token = issued["access_token"].as_str().expect("a token");
    assert_eq!(other_path, 200);
    assert_eq!(as_json.status().as_u16(), 400, "JSON is not a form");
    let find = |token: String| {
        env.http
            .get(env.url(&format!("/organizations/{ORG}/guests/nobody@example.com")))
            .bearer_auth(token)
            .header("accept", "application/json")
            .header("x-tallyfy-client", "APIClient")
            .send()
    };
    assert_eq!(find(token.to_owned()).await.unwrap().status().as_u16(), 404);
    let (status, _) = env
        .control(Method::POST, "/tokens/expire", json!(null))
        .await;
    assert_eq!(status, 200);
    assert_eq!(find(token.to_owned()).await.unwrap().status().as_u16(), 401);
    let (_, stats) = env.control(Method::GET, "/stats", json!(null)).await;
    assert_eq!(stats["token_requests"]["client_credentials"], 2);
    assert_eq!(stats["tokens_issued"], 2);
}
