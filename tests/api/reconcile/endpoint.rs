//! `POST /reconcile/{source}` itself: the admin token, a source that cannot be reconciled, and
//! a body that names a bad field.

use serde_json::json;

use super::{reconcile, spawn_reconcile_app};

#[tokio::test]
async fn a_source_without_api_credentials_cannot_be_reconciled() {
    let app = spawn_reconcile_app(&[]).await;

    let (status, body) = reconcile(&app, "pipedrive", json!({})).await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("API credentials"))
    );
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_its_field() {
    let app = spawn_reconcile_app(&[]).await;

    for (body, field) in [
        (json!({"days": 0}), "days"),
        (json!({"since": "2026-12-01T00:00:00Z", "days": 2}), "days"),
        (json!({"since": "last week"}), "since"),
        (json!({"dry_run": 1}), "dry_run"),
        (json!({"from": "2026-12-01T00:00:00Z"}), "body"),
    ] {
        let (status, answer) = reconcile(&app, "pipedrive", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn reconcile_needs_the_admin_token() {
    let app = spawn_reconcile_app(&[]).await;

    let response = app
        .client
        .post(format!("{}/reconcile/pipedrive", app.address))
        .bearer_auth("not-the-token")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status().as_u16(), 401);
}
