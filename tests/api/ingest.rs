//! `POST /webhooks/contacts`: every answer it can give, and that refusals store nothing.

use serde_json::{Value, json};

use crate::helpers::{error_of, spawn_app};

#[tokio::test]
async fn a_valid_contact_is_queued_and_stored_as_sent() {
    // Arrange
    let app = spawn_app().await;
    let contact = json!({
        "email": "  Ada.Lovelace@Example.COM ",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone_1": "+44 20 7946 0000",
        "timezone": "Europe/London",
        "associated_members": [7],
    });

    // Act
    let response = app.post_signed("msg_ada", &contact.to_string()).await;

    // Assert
    assert_eq!(response.status().as_u16(), 202);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_i64().expect("numeric id");

    let db = app.db().await;
    let (email, event_id, state, payload): (String, String, String, String) =
        sqlx::query_as("SELECT email, event_id, state, payload FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .expect("row committed before the 202");
    assert_eq!(email, "ada.lovelace@example.com");
    assert_eq!(event_id, "msg_ada");
    assert_eq!(state, "queued");
    let payload: Value = serde_json::from_str(&payload).expect("payload json");
    assert_eq!(
        (&payload["v"], &payload["kind"]),
        (&json!(1), &json!("guest"))
    );
    assert_eq!(payload["guest"]["email"], "Ada.Lovelace@Example.COM");
    assert_eq!(payload["guest"]["associated_members"], json!([7]));
}

#[tokio::test]
async fn a_repeated_event_id_returns_the_first_id_and_stores_nothing() {
    let app = spawn_app().await;
    let first = app
        .post_signed("msg_retry", r#"{"email":"a@example.com"}"#)
        .await;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");

    // The CRM retries the same event (a new signature, same webhook-id).
    let again = app
        .post_signed("msg_retry", r#"{"email":"a@example.com"}"#)
        .await;

    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn the_event_id_field_deduplicates_when_the_sender_has_no_webhook_id() {
    let app = spawn_app_unsigned().await;
    let body = json!({"event_id": "crm-42", "email": "b@example.com"});
    let post = || {
        app.client
            .post(format!("{}/webhooks/contacts", app.address))
            .json(&body)
            .send()
    };
    assert_eq!(post().await.expect("sent").status().as_u16(), 202);
    assert_eq!(post().await.expect("sent").status().as_u16(), 200);
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn events_without_any_id_are_each_stored() {
    let app = spawn_app_unsigned().await;
    for _ in 0..2 {
        let response = app
            .client
            .post(format!("{}/webhooks/contacts", app.address))
            .json(&json!({"email": "c@example.com"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 202);
    }
    // Both are kept; the delivery ledger, not ingest, makes them one guest.
    assert_eq!(app.outbox_rows().await, 2);
}

async fn spawn_app_unsigned() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(&[("BRIDGE__INGEST__AUTH__MODE", "none".into())]).await
}

#[tokio::test]
async fn invalid_contacts_get_422_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    let cases = [
        (json!({}), "email", "missing_field"),
        (json!({"email": "no-at-sign"}), "email", "invalid_email"),
        (json!({"email": 12}), "email", "invalid_type"),
        (
            json!({"email": "a@example.com", "first_name": long}),
            "first_name",
            "too_long",
        ),
        (
            json!({"email": "a@example.com", "phone_2": "123456789012345678901"}),
            "phone_2",
            "too_long",
        ),
        (
            json!({"email": "a@example.com", "timezone": "Europe/Atlantis"}),
            "timezone",
            "invalid_timezone",
        ),
        (
            json!({"email": "a@example.com", "associated_members": "7"}),
            "associated_members",
            "invalid_type",
        ),
        (
            json!({"email": "a@example.com", "last_name": ["x"]}),
            "last_name",
            "invalid_type",
        ),
        (
            json!({"email": "a@example.com", "phone": "123"}),
            "phone",
            "unknown_field",
        ),
    ];
    for (contact, field, code) in cases {
        let (status, error) = error_of(app.post_contact(contact.clone()).await).await;
        assert_eq!(status, 422, "{contact}");
        assert_eq!(error["field"], field, "{contact}");
        assert_eq!(error["code"], code, "{contact}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let app = spawn_app().await;
    for body in [r#"{"email": "a@example.com""#, "[1,2]", "null", ""] {
        let (status, error) = error_of(app.post_signed("msg_bad", body).await).await;
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(error["code"], "malformed_json", "{body:?}");
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let app =
        crate::helpers::spawn_app_with(&[("BRIDGE__HTTP__MAX_BODY_BYTES", "1024".into())]).await;
    let padding = "x".repeat(2000);
    let body = json!({"email": "a@example.com", "first_name": padding}).to_string();

    let (status, error) = error_of(app.post_signed("msg_big", &body).await).await;

    assert_eq!(status, 413);
    assert_eq!(error["code"], "payload_too_large");
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    // No Content-Length: the limit must hold while reading, not only for declared sizes.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        crate::helpers::spawn_app_with(&[("BRIDGE__HTTP__MAX_BODY_BYTES", "1024".into())]).await;
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = "POST /webhooks/contacts HTTP/1.1\r\nHost: bridge\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("1f4\r\n{}\r\n", "x".repeat(500));
    let mut request = head.to_string();
    for _ in 0..10 {
        request.push_str(&chunk);
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and stop reading before the whole body is written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = vec![0; 64];
    let n = stream.read(&mut response).await.expect("response");
    let status_line = String::from_utf8_lossy(&response[..n]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test]
async fn a_non_json_content_type_gets_415() {
    let app = spawn_app().await;
    let body = r#"{"email":"a@example.com"}"#;
    let timestamp = chrono::Utc::now().timestamp();
    let response = app
        .client
        .post(format!("{}/webhooks/contacts", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("webhook-id", "msg_form")
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            crate::helpers::sign("msg_form", timestamp, body),
        )
        .body(body)
        .send()
        .await
        .expect("sent");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 415);
    assert_eq!(error["code"], "unsupported_media_type");
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.get("/nope").await).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
    let response = app.get("/webhooks/contacts").await;
    assert_eq!(response.headers()["allow"], "POST");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 405);
    assert_eq!(error["code"], "method_not_allowed");
}
