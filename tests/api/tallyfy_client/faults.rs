//! Injected faults and transport failures, and the outcome class the client gives each:
//! whether a request "may have reached" Tallyfy is what keeps the bridge from re-creating.

use std::time::{Duration, Instant};

use serde_json::json;
use tallyfy_bridge::tallyfy::{CallError, GuestId};
use tallyfy_sandbox::{Faults, SandboxConfig};

use super::helpers::{
    ORG, canned_server, client_for, closed_port, config, guest, spawn, spawn_with_timeout,
};

#[tokio::test]
async fn a_429_burst_reports_its_retry_after_seconds() {
    let env = spawn(config()).await;
    env.sandbox.burst_429(2, 7);

    let first = env.client.create_guest(&guest("burst@example.com")).await;
    let second = env.client.find_guest("burst@example.com").await;
    let third = env.client.create_guest(&guest("burst@example.com")).await;

    let limited = CallError::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    };
    assert_eq!(first, Err(limited.clone()));
    assert_eq!(second, Err(limited));
    assert!(third.is_ok());
    let stats = env.sandbox.stats();
    assert_eq!(
        (stats.rate_limited, stats.faults["burst_429"], stats.creates),
        (2, 2, 1)
    );
}

#[tokio::test]
async fn a_5xx_is_transient_and_may_have_reached() {
    let env = spawn(SandboxConfig {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..config()
    })
    .await;

    let err = env
        .client
        .create_guest(&guest("err@example.com"))
        .await
        .unwrap_err();

    match err {
        CallError::Transient {
            may_have_reached,
            status,
            ..
        } => {
            assert!(may_have_reached);
            assert_eq!(status, Some(500));
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(env.sandbox.stats().faults["error_5xx"], 1);
}

#[tokio::test]
async fn a_hang_past_the_client_timeout_is_transient_and_may_have_reached() {
    let faults = Faults {
        timeout_rate: 1.0,
        hang_ms: 1000,
        ..Faults::default()
    };
    let env = spawn_with_timeout(
        SandboxConfig { faults, ..config() },
        Duration::from_millis(150),
    )
    .await;
    let started = Instant::now();

    let err = env
        .client
        .create_guest(&guest("slow@example.com"))
        .await
        .unwrap_err();

    assert!(
        started.elapsed() < Duration::from_millis(900),
        "client must not wait for the hang"
    );
    match &err {
        CallError::Transient {
            may_have_reached: true,
            status: None,
            detail,
        } => {
            assert!(detail.starts_with("timed out"), "{detail}");
        }
        other => panic!("expected an uncertain Transient, got {other:?}"),
    }
    assert_eq!(env.sandbox.stats().faults["timeout"], 1);
}

#[tokio::test]
async fn a_create_dropped_after_success_is_uncertain_and_the_guest_exists() {
    let faults = Faults {
        drop_after_create_rate: 1.0,
        ..Faults::default()
    };
    let env = spawn(SandboxConfig { faults, ..config() }).await;

    let err = env
        .client
        .create_guest(&guest("drop@example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            CallError::Transient {
                may_have_reached: true,
                status: None,
                ..
            }
        ),
        "got {err:?}"
    );
    assert_eq!(env.sandbox.create_count("drop@example.com"), 1);
    assert_eq!(env.sandbox.stats().faults["drop_after_create"], 1);
    // What the worker does next: look up before creating again, and find it.
    let found = env.client.find_guest("drop@example.com").await.unwrap();
    assert_eq!(
        found.map(GuestId::into_string),
        Some(env.sandbox.guests()[0].id.clone())
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_did_not_reach() {
    let port = closed_port().await;
    let client = client_for(
        &format!("http://127.0.0.1:{port}"),
        ORG,
        Duration::from_secs(5),
    );

    let err = client
        .create_guest(&guest("refused@example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            CallError::Transient {
                may_have_reached: false,
                status: None,
                ..
            }
        ),
        "got {err:?}"
    );
}

#[tokio::test]
async fn a_success_without_an_id_is_uncertain() {
    let base = canned_server(
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"data\":{}}",
    )
    .await;
    let client = client_for(&base, ORG, Duration::from_secs(5));

    let err = client
        .create_guest(&guest("noid@example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            CallError::Transient {
                may_have_reached: true,
                status: Some(201),
                ..
            }
        ),
        "got {err:?}"
    );
}

#[tokio::test]
async fn the_hourly_cap_answers_429_after_n_creates() {
    let faults = Faults {
        hourly_cap: Some(3),
        cap_window_secs: 60,
        ..Faults::default()
    };
    let env = spawn(SandboxConfig { faults, ..config() }).await;
    for n in 0..3 {
        env.client
            .create_guest(&guest(&format!("cap{n}@example.com")))
            .await
            .unwrap();
    }

    let err = env
        .client
        .create_guest(&guest("cap3@example.com"))
        .await
        .unwrap_err();
    let (status, body) = env
        .raw_create(&json!({"email": "cap4@example.com"}), &[])
        .await;

    match err {
        CallError::GuestCapReached {
            retry_after: Some(wait),
        } => {
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(60),
                "{wait:?}"
            );
        }
        other => panic!("expected GuestCapReached with a wait, got {other:?}"),
    }
    assert_eq!(status, 429);
    assert_eq!(body["code"], "RATE_LIMIT_EXCEEDED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("hourly limit for Guest Invite (3 per hour")
    );
    assert_eq!(env.sandbox.guests().len(), 3);
    assert_eq!(env.sandbox.stats().faults["hourly_cap"], 2);
}

#[tokio::test]
async fn latency_delays_the_answer_but_not_the_outcome() {
    let faults = Faults {
        latency_ms: 120,
        ..Faults::default()
    };
    let env = spawn(SandboxConfig { faults, ..config() }).await;
    let started = Instant::now();

    env.client
        .create_guest(&guest("late@example.com"))
        .await
        .unwrap();

    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(env.sandbox.stats().faults["latency"], 1);
}

#[tokio::test]
async fn shutdown_stops_the_sandbox() {
    let env = spawn(config()).await;
    let base = env.sandbox.base_url();

    env.sandbox.shutdown().await;

    let client = client_for(&base, ORG, Duration::from_secs(2));
    let err = client.find_guest("gone@example.com").await.unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Transient {
                may_have_reached: false,
                ..
            }
        ),
        "got {err:?}"
    );
}
