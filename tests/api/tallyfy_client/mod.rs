//! The Tallyfy client against the sandbox over real loopback HTTP: every outcome class,
//! both id shapes, both duplicate behaviours, and each injected fault.

mod faults;
mod helpers;
mod sandbox_api;

use std::time::Duration;

use self::helpers::{ORG, TOKEN, client_for, config, guest, spawn};
use tallyfy_bridge::tallyfy::CallError;
use tallyfy_sandbox::{DuplicateMode, IdStyle, SandboxConfig};

#[tokio::test]
async fn a_new_guest_gets_a_numeric_id() {
    let env = spawn(config()).await;

    let id = env
        .client
        .create_guest(&guest("ada@example.com"))
        .await
        .unwrap();

    assert!(id.as_str().parse::<u64>().is_ok(), "numeric id, got {id}");
    let guests = env.sandbox.guests();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].id, id.as_str());
    assert_eq!(env.sandbox.create_count("ada@example.com"), 1);
}

#[tokio::test]
async fn a_new_guest_gets_a_text_id_in_text_style() {
    let env = spawn(SandboxConfig {
        id_style: IdStyle::Text,
        ..config()
    })
    .await;

    let id = env
        .client
        .create_guest(&guest("ada@example.com"))
        .await
        .unwrap();

    assert!(id.as_str().parse::<u64>().is_err(), "text id, got {id}");
    assert_eq!(env.sandbox.guests()[0].id, id.as_str());
    let found = env.client.find_guest("ada@example.com").await.unwrap();
    assert_eq!(found, Some(id));
}

#[tokio::test]
async fn find_guest_handles_plus_and_case_and_404_is_none() {
    let env = spawn(config()).await;
    let id = env
        .client
        .create_guest(&guest("Jane+Tag@Example.COM"))
        .await
        .unwrap();

    let exact = env.client.find_guest("Jane+Tag@Example.COM").await.unwrap();
    let lower = env.client.find_guest("jane+tag@example.com").await.unwrap();
    let without_tag = env.client.find_guest("jane@example.com").await.unwrap();
    let unknown = env.client.find_guest("nobody@example.com").await.unwrap();

    assert_eq!(exact, Some(id.clone()));
    assert_eq!(lower, Some(id));
    assert_eq!(without_tag, None);
    assert_eq!(unknown, None);
    assert_eq!(env.sandbox.stats().requests["find_guest"], 4);
}

#[tokio::test]
async fn a_repeat_create_in_link_mode_returns_the_same_id_and_creates_once() {
    let env = spawn(config()).await;
    let first = env
        .client
        .create_guest(&guest("dup@example.com"))
        .await
        .unwrap();

    let second = env
        .client
        .create_guest(&guest(" DUP@example.com"))
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_eq!(env.sandbox.create_count("dup@example.com"), 1);
    let stats = env.sandbox.stats();
    assert_eq!((stats.creates, stats.duplicate_create_attempts), (1, 1));
    assert_eq!(env.sandbox.guests()[0].duplicate_attempts, 1);
}

#[tokio::test]
async fn a_repeat_create_in_reject_mode_is_unprocessable_with_tallyfys_message() {
    let env = spawn(SandboxConfig {
        duplicate_mode: DuplicateMode::Reject422,
        ..config()
    })
    .await;
    env.client
        .create_guest(&guest("dup@example.com"))
        .await
        .unwrap();

    let err = env
        .client
        .create_guest(&guest("dup@example.com"))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        CallError::Unprocessable {
            message: "email: The email has already been taken.".into()
        }
    );
    assert_eq!(env.sandbox.create_count("dup@example.com"), 1);
}

#[tokio::test]
async fn a_too_long_first_name_is_unprocessable_naming_the_field() {
    let env = spawn(config()).await;
    let mut request = guest("long@example.com");
    request.first_name = Some("x".repeat(201));

    let err = env.client.create_guest(&request).await.unwrap_err();

    match err {
        CallError::Unprocessable { message } => {
            assert_eq!(
                message,
                "first_name: The first name may not be greater than 200 characters."
            );
        }
        other => panic!("expected Unprocessable, got {other:?}"),
    }
    assert!(env.sandbox.guests().is_empty());
}

#[tokio::test]
async fn a_rotated_token_is_unauthorized_until_it_is_restored() {
    let env = spawn(config()).await;
    env.sandbox.set_token("rotated-token");

    let create = env.client.create_guest(&guest("auth@example.com")).await;
    let find = env.client.find_guest("auth@example.com").await;
    env.sandbox.set_token(TOKEN);
    let retried = env.client.create_guest(&guest("auth@example.com")).await;

    assert_eq!(create, Err(CallError::Unauthorized { status: 401 }));
    assert_eq!(find, Err(CallError::Unauthorized { status: 401 }));
    assert!(retried.is_ok());
    assert_eq!(env.sandbox.stats().unauthorized, 2);
}

#[tokio::test]
async fn a_foreign_org_is_unauthorized_403() {
    let env = spawn(config()).await;
    let client = client_for(&env.sandbox.base_url(), "other-org", Duration::from_secs(5));

    let err = client
        .create_guest(&guest("org@example.com"))
        .await
        .unwrap_err();

    assert_eq!(err, CallError::Unauthorized { status: 403 });
    assert!(env.sandbox.guests().is_empty());
}

#[tokio::test]
async fn a_base_url_with_api_suffix_and_trailing_slash_works() {
    let env = spawn(config()).await;
    let client = client_for(
        &format!("{}/api/", env.sandbox.base_url()),
        ORG,
        Duration::from_secs(5),
    );

    let id = client
        .create_guest(&guest("api@example.com"))
        .await
        .unwrap();

    assert_eq!(
        client.find_guest("api@example.com").await.unwrap(),
        Some(id)
    );
}
