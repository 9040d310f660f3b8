//! Tallyfy credentials against the sandbox's token endpoint over loopback: OAuth tokens renewed
//! through expiries (forced by the sandbox, or by the driven clock passing `expires_in`) and
//! restarts without a pause or a second create; refusals that pause with what to fix; a personal
//! access token replaced by a restart.

mod binary;
mod oauth;
mod personal;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tallyfy_bridge::delivery::Worker;
use tallyfy_bridge::domain::outcome::Outcome;
use tallyfy_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

use crate::delivery::clock::ManualClock;
use crate::delivery::delivering_to;
use crate::helpers::{TestApp, spawn_app_driven};

pub type Overrides = Vec<(&'static str, String)>;

/// The bridge delivering to `sandbox` with `auth` on top (token mode without it).
pub fn bridge(sandbox: &SandboxHandle, token: &str, auth: &[(&'static str, String)]) -> Overrides {
    let mut settings = delivering_to(sandbox, "demo-org".into(), token.into());
    settings.push(("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "2000".into()));
    settings.push(("BRIDGE__DELIVERY__CONCURRENCY", "8".into()));
    settings.extend(auth.iter().cloned());
    settings
}

/// `tallyfy.auth = "client_credentials"` against the sandbox's `/oauth/token`.
pub fn client_credentials(sandbox: &SandboxHandle, secret: &str) -> Overrides {
    vec![
        ("BRIDGE__TALLYFY__AUTH", "client_credentials".into()),
        ("BRIDGE__TALLYFY__CLIENT_ID", "sandbox-client".into()),
        ("BRIDGE__TALLYFY__CLIENT_SECRET", secret.into()),
        (
            "BRIDGE__TALLYFY__TOKEN_URL",
            format!("{}/oauth/token", sandbox.base_url()),
        ),
    ]
}

/// `tallyfy.auth = "password"` against the sandbox's other path, `/api/oauth/token`.
pub fn password(sandbox: &SandboxHandle) -> Overrides {
    vec![
        ("BRIDGE__TALLYFY__AUTH", "password".into()),
        ("BRIDGE__TALLYFY__CLIENT_ID", "sandbox-client".into()),
        (
            "BRIDGE__TALLYFY__CLIENT_SECRET",
            "sandbox-client-secret".into(),
        ),
        ("BRIDGE__TALLYFY__USERNAME", "bridge@example.com".into()),
        ("BRIDGE__TALLYFY__PASSWORD", "sandbox-password".into()),
        (
            "BRIDGE__TALLYFY__TOKEN_URL",
            format!("{}/api/oauth/token", sandbox.base_url()),
        ),
    ]
}

pub async fn sandbox(config: SandboxConfig) -> SandboxHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Sandbox::start(config, addr).await.expect("sandbox starts")
}

pub struct AuthEnv {
    pub app: TestApp,
    pub sandbox: SandboxHandle,
    pub clock: ManualClock,
}

impl AuthEnv {
    /// The app with `settings`, its worker driven by the test on a clock the test moves.
    pub async fn start(sandbox: SandboxHandle, settings: &[(&'static str, String)]) -> Self {
        let clock = ManualClock::new(chrono::Utc::now().timestamp_millis());
        let app = spawn_app_driven(settings, Arc::new(clock.clone())).await;
        Self {
            app,
            sandbox,
            clock,
        }
    }

    pub fn worker(&self) -> Arc<Worker> {
        self.app.worker.clone().expect("delivery is enabled")
    }

    /// Posts a contact for `email`; its row is due on the test clock.
    pub async fn post(&self, email: &str) {
        let response = self.app.post_contact(json!({"email": email})).await;
        assert_eq!(response.status().as_u16(), 202);
        self.clock.catch_up(chrono::Utc::now().timestamp_millis());
    }

    /// Runs the worker until nothing is due or delivery pauses; every outcome, in order.
    pub async fn drain(&self) -> Vec<Outcome> {
        let worker = self.worker();
        let mut all = Vec::new();
        for _ in 0..50 {
            let outcomes = worker.run_once().await.expect("run_once");
            if outcomes.is_empty() {
                return all;
            }
            let paused = outcomes
                .iter()
                .any(|(_, o)| matches!(o, Ok(Outcome::Paused { .. })));
            all.extend(outcomes.into_iter().map(|(_, o)| o.expect("lease kept")));
            if paused {
                return all;
            }
        }
        panic!("delivery did not settle: {all:?}");
    }

    /// Token endpoint requests the sandbox received for `grant`.
    pub fn grants(&self, grant: &str) -> u64 {
        let stats = self.sandbox.stats();
        stats.token_requests.get(grant).copied().unwrap_or(0)
    }

    pub async fn status(&self) -> Value {
        let response = self.app.get("/status").await;
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("json")
    }

    /// Every email in `emails` is exactly one guest, created once, and the sandbox has no other
    /// (a POST refused with 401 created nothing and is not counted).
    pub fn assert_created_once(&self, emails: &[&str]) {
        for email in emails {
            assert_eq!(self.sandbox.create_count(email), 1, "{email}");
        }
        assert_eq!(self.sandbox.guests().len(), emails.len());
        let stats = self.sandbox.stats();
        assert_eq!(stats.creates, emails.len() as u64);
        assert_eq!(
            stats.duplicate_create_attempts, 0,
            "no second create for any email"
        );
    }

    pub async fn restart(self) -> Self {
        Self {
            app: self.app.restart().await,
            ..self
        }
    }

    pub async fn restart_with(self, settings: &[(&'static str, String)]) -> Self {
        Self {
            app: self.app.restart_with(settings).await,
            ..self
        }
    }
}

/// No outcome paused delivery, and every one delivered.
pub fn all_delivered(outcomes: &[Outcome]) {
    assert!(!outcomes.is_empty());
    for outcome in outcomes {
        assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    }
}
