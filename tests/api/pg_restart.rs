//! PostgreSQL restarted under a running bridge (the `api_postgres` run only): while the server
//! is down no webhook gets a 2xx and readiness is false; once it is back the bridge recovers by
//! itself and every acknowledged event is delivered once.

use std::time::{Duration, Instant};

use serde_json::json;
use tallyfy_sandbox::{Sandbox, SandboxConfig};

use crate::delivery::delivering_to;
use crate::helpers::{TestApp, on_postgres, spawn_app_with};
use crate::postgres_server::OwnServer;

/// Polls `check` every 100 ms for up to 60 s: the server's restart is another process's doing,
/// so there is no clock to drive.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 60 s: {what}");
}

async fn post(app: &TestApp, n: usize) -> u16 {
    app.post_contact(json!({"email": format!("restart-{n}@example.com")}))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_postgresql_restart_costs_503s_and_nothing_else() {
    if !on_postgres() {
        return;
    }
    let Some(server) = OwnServer::start() else {
        return;
    };
    let config = SandboxConfig::default();
    let (org, token) = (config.org_id.clone(), config.token.clone());
    let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let mut settings = delivering_to(&sandbox, org, token);
    settings.extend([
        ("BRIDGE__DATABASE__URL", format!("{}/bridge", server.url())),
        ("BRIDGE__DATABASE__BUSY_TIMEOUT_MS", "1000".into()),
        ("BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR", "0".into()),
        ("BRIDGE__DELIVERY__IDLE_POLL_MS", "100".into()),
        // A delivery whose result could not be recorded while the server was down stays in
        // flight until its lease ends, then is looked up and completed: keep that short.
        ("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "1000".into()),
        ("BRIDGE__DELIVERY__LEASE_SECS", "7".into()),
    ]);
    let app = spawn_app_with(&settings).await;
    let mut acknowledged = Vec::new();
    for n in 0..10 {
        assert_eq!(post(&app, n).await, 202);
        acknowledged.push(n);
    }

    server.stop();
    // Down: every webhook is refused with 503 (the CRM retries), readiness says so.
    for n in 10..15 {
        assert_eq!(
            post(&app, n).await,
            503,
            "an event was acknowledged while the database was down"
        );
    }
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 503);

    server.start_again();
    // Back: the same pools reconnect; nothing is restarted by hand.
    eventually("readiness is true again", async || {
        app.get("/health/ready").await.status().as_u16() == 200
    })
    .await;
    for n in 10..20 {
        assert_eq!(post(&app, n).await, 202);
        acknowledged.push(n);
    }
    eventually("every acknowledged event is delivered", async || {
        sandbox.guests().len() == acknowledged.len()
    })
    .await;
    for n in &acknowledged {
        assert_eq!(sandbox.create_count(&format!("restart-{n}@example.com")), 1);
    }
}
