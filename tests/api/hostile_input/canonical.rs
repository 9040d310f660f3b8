//! `POST /webhooks/contacts`: each hostile form is refused with its own code before anything is
//! stored, and an internationalised domain is one mailbox.

use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use super::{GZIP, LATIN1, post_bytes, signed_headers};
use crate::delivery::delivery_env;
use crate::helpers::{TestApp, error_of, spawn_app, uuid_like};

/// The (status, code, field) of a refused signed body.
async fn refusal(app: &TestApp, body: &str) -> (u16, Value, Value) {
    let response = app.post_signed(&format!("msg_{}", uuid_like()), body).await;
    let (status, error) = error_of(response).await;
    (status, error["code"].clone(), error["field"].clone())
}

#[tokio::test]
async fn addresses_tallyfy_refuses_get_422_naming_email_and_store_nothing() {
    let app = spawn_app().await;
    for email in [
        "Name <a@example.com>",
        "<a@example.com>",
        "\"quoted local\"@example.com",
        "a(comment)@example.com",
        "a b@example.com",
        "a@[192.0.2.1]",
        "a@192.0.2.1",
        "a..b@example.com",
        "a@example.com.",
        "a@exa_mple.com",
        "josé@example.com",
        "a@xn--a.de",
    ] {
        let body = json!({ "email": email }).to_string();
        assert_eq!(
            refusal(&app, &body).await,
            (422, json!("invalid_email"), json!("email")),
            "{email}"
        );
    }
    let long = format!("{}@{}.com", "a".repeat(64), "d".repeat(186));
    let (status, _, field) = refusal(&app, &json!({ "email": long }).to_string()).await;
    assert_eq!((status, field), (422, json!("email")));
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_unicode_domain_and_its_punycode_make_one_guest_sent_in_ascii() {
    // Arrange
    let env = delivery_env(SandboxConfig::default()).await;
    let first = env.post(json!({"email": "a@bücher.de"})).await;
    env.post(json!({"email": "A@xn--bcher-kva.de"})).await;
    env.post(json!({"email": "a@BÜCHER.de"})).await;

    // Act
    env.drain().await;

    // Assert: one create, in the ASCII form, and every row delivered to it.
    assert_eq!(env.posts(), 1);
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].email, "a@xn--bcher-kva.de");
    assert_eq!(env.row(first).await.state, "delivered");
    assert!(env.ledger("a@xn--bcher-kva.de").await.is_some());
}

#[tokio::test]
async fn lists_over_their_bound_get_422_naming_the_field() {
    let app = spawn_app().await;
    let members = |n: usize| json!({"email": "a@example.com", "associated_members": vec![7; n]});
    assert_eq!(app.post_contact(members(100)).await.status().as_u16(), 202);
    assert_eq!(
        refusal(&app, &members(100_000).to_string()).await,
        (422, json!("too_many"), json!("associated_members"))
    );
    let huge_id = json!({"email": "a@example.com", "associated_members": [u64::MAX]});
    assert_eq!(
        refusal(&app, &huge_id.to_string()).await,
        (422, json!("invalid_type"), json!("associated_members"))
    );
    assert_eq!(app.outbox_rows().await, 1);
}

#[tokio::test]
async fn repeated_keys_and_control_characters_get_422_and_store_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        refusal(&app, r#"{"email":"a@x.com","email":"b@x.com"}"#).await,
        (422, json!("duplicate_key"), json!("email"))
    );
    assert_eq!(
        refusal(
            &app,
            r#"{"email":"a@x.com","first_name":"A","first_name":"B"}"#
        )
        .await,
        (422, json!("duplicate_key"), json!("first_name"))
    );
    for name in [
        "Ada\u{0}",
        "A\u{1b}[31mda",
        "Ada\nLovelace",
        "Ada\u{7f}",
        "Ada\u{9b}",
    ] {
        let body = json!({"email": "a@example.com", "last_name": name}).to_string();
        assert_eq!(
            refusal(&app, &body).await,
            (422, json!("control_character"), json!("last_name")),
            "{name:?}"
        );
    }
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test]
async fn encoding_problems_are_named_before_authentication() {
    let app = spawn_app().await;
    let url = format!("{}/webhooks/contacts", app.address);
    // (body, Content-Encoding, status, code)
    let cases: [(&[u8], Option<&str>, u16, &str); 4] = [
        (GZIP, Some("gzip"), 415, "unsupported_encoding"),
        (b"{}", Some("br"), 415, "unsupported_encoding"),
        (LATIN1, None, 400, "invalid_encoding"),
        (b"\xff\xfe{\x00}\x00", None, 400, "invalid_encoding"),
    ];
    for (body, encoding, status, code) in cases {
        // Signed or not, the answer is about the encoding, not authentication.
        for signed in [true, false] {
            let mut headers = if signed {
                signed_headers("msg_enc", body)
            } else {
                vec![("content-type", "application/json".into())]
            };
            headers.extend(encoding.map(|e| ("content-encoding", e.to_owned())));
            let (got, error) = error_of(post_bytes(&app.client, &url, &headers, body).await).await;
            assert_eq!(
                (got, error["code"].as_str()),
                (status, Some(code)),
                "{code} {signed}"
            );
        }
    }
    // `identity` is no encoding at all.
    let body = br#"{"email":"a@example.com"}"#;
    let mut headers = signed_headers("msg_identity", body);
    headers.push(("content-encoding", "identity".into()));
    let response = post_bytes(&app.client, &url, &headers, body).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(app.outbox_rows().await, 1);
}
