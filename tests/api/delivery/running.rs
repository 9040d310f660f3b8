//! The delivery loop `serve` runs, in process: woken by ingest commits, probing while paused,
//! refilling slots as attempts finish. Polling timers are set to a minute, so only the loop's own
//! triggers can deliver within a test's deadline; tests wait on `/status`, never a fixed sleep.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig, SandboxHandle};

use super::delivering_to;
use crate::helpers::{TestApp, spawn_app_with};

/// The sandbox, and the app delivering to it with its loop running; `overrides` on top.
async fn running(config: SandboxConfig, overrides: &[(&str, String)]) -> (TestApp, SandboxHandle) {
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let mut settings = delivering_to(&sandbox, org, token);
    settings.push(("BRIDGE__DELIVERY__IDLE_POLL_MS", "60000".into()));
    settings.extend(overrides.iter().cloned());
    (spawn_app_with(&settings).await, sandbox)
}

/// `/status` once `done` holds for it, or the last one seen after 10 s.
async fn status_once(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value = app.get("/status").await.json().await.expect("json");
        if done(&status) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(status: &Value) -> u64 {
    status["outbox"]["counts"]["delivered"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_running_service_delivers_a_posted_contact_without_being_driven() {
    // Arrange: the loop inside `serve`, woken by the ingest commit, not by a test or a timer.
    let (app, sandbox) = running(SandboxConfig::default(), &[]).await;

    // Act
    let response = app.post_contact(json!({"email": "live@example.com"})).await;
    assert_eq!(response.status().as_u16(), 202);

    // Assert
    let status = status_once(&app, |s| delivered(s) == 1).await;
    assert_eq!(delivered(&status), 1, "{status}");
    assert!(status["delivery"]["last_delivered_at"].is_string());
    assert!(status["delivery"]["heartbeat_at"].is_string());
    assert_eq!(sandbox.create_count("live@example.com"), 1);
}

#[tokio::test]
async fn a_paused_service_probes_and_resumes_once_the_token_works_again() {
    // Arrange: a refused token pauses delivery; the probe comes a second later.
    let (app, sandbox) = running(
        SandboxConfig::default(),
        &[("BRIDGE__DELIVERY__PAUSED_PROBE_SECS", "1".into())],
    )
    .await;
    sandbox.set_token("rotated-token");
    let response = app
        .post_contact(json!({"email": "probe@example.com"}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let status = status_once(&app, |s| s["delivery"]["paused"] == true).await;
    assert_eq!(status["delivery"]["paused"], true, "{status}");

    // Act: the token works again; nothing else happens that could wake the worker.
    sandbox.set_token(SandboxConfig::default().token);

    // Assert: the probe delivered the row, then lifted the pause.
    let status = status_once(&app, |s| {
        delivered(s) == 1 && s["delivery"]["paused"] == false
    })
    .await;
    assert_eq!(delivered(&status), 1, "{status}");
    assert_eq!(status["delivery"]["paused"], false, "{status}");
    assert_eq!(sandbox.create_count("probe@example.com"), 1);
}

#[tokio::test]
async fn a_busy_service_refills_its_slots_as_attempts_finish() {
    // Arrange: two slots, slow answers, six contacts: four must wait for a slot to free up.
    let slow = SandboxConfig {
        faults: Faults {
            latency_ms: 150,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let (app, sandbox) = running(slow, &[("BRIDGE__DELIVERY__CONCURRENCY", "2".into())]).await;
    let emails: Vec<String> = (0..6).map(|n| format!("slot{n}@example.com")).collect();

    // Act
    for email in &emails {
        let response = app.post_contact(json!({ "email": email })).await;
        assert_eq!(response.status().as_u16(), 202);
    }

    // Assert: all delivered long before the minute-long idle poll; each email once.
    let status = status_once(&app, |s| delivered(s) == 6).await;
    assert_eq!(delivered(&status), 6, "{status}");
    for email in &emails {
        assert_eq!(sandbox.create_count(email), 1, "{email}");
    }
}
