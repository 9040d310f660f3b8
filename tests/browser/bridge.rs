//! The real bridge binary for the browser tests: `serve --sandbox` on free ports over a temp
//! database, an admin token, webhook signatures as in the API tests, and a row made to fail.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{SIGNING_SECRET, signed_post, uuid_like};
use crate::process::{Guard, bridge, sandbox_url, start};

/// The console's login token (the admin token: at least 16 characters).
pub const ADMIN_TOKEN: &str = "browser-test-admin-token-0123456789";

pub struct Bridge {
    /// `http://127.0.0.1:<port>` of the bridge.
    pub base: String,
    /// `http://127.0.0.1:<port>` of its built-in sandbox (fake Tallyfy) and control API.
    pub sandbox: String,
    client: reqwest::Client,
    _child: Guard,
    /// Kept so the reader thread keeps draining the child's stdout.
    _logs: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Bridge {
    pub fn start() -> Bridge {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = bridge(&dir.path().join("bridge.sqlite"));
        command
            .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
            .env("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN)
            .env_remove("BRIDGE__DELIVERY__ENABLED")
            .args(["serve", "--sandbox", "--sandbox-addr", "127.0.0.1:0"]);
        let (child, logs, mut seen, port) = start(command);
        let sandbox = sandbox_url(&logs, &mut seen);
        Bridge {
            base: format!("http://127.0.0.1:{port}"),
            sandbox,
            client: reqwest::Client::new(),
            _child: child,
            _logs: logs,
            _dir: dir,
        }
    }

    /// Posts a signed contact for `email`; the outbox row's id.
    pub async fn post_contact(&self, email: &str) -> i64 {
        let url = format!("{}/webhooks/contacts", self.base);
        let id = format!("msg_{}", uuid_like());
        let body = json!({"email": email, "first_name": "Browser"}).to_string();
        let response = signed_post(&self.client, &url, &id, &body)
            .send()
            .await
            .expect("webhook sent");
        assert_eq!(response.status().as_u16(), 202);
        let accepted: Value = response.json().await.expect("JSON answer");
        accepted["id"].as_i64().expect("the row's id")
    }

    /// Replaces the sandbox's faults (`{}`: none).
    pub async fn set_faults(&self, faults: Value) {
        let response = self
            .client
            .put(format!("{}/_sandbox/faults", self.sandbox))
            .json(&faults)
            .send()
            .await
            .expect("faults sent");
        assert!(response.status().is_success(), "{response:?}");
    }

    /// `/status`'s outbox counts, by state.
    pub async fn counts(&self) -> Value {
        let status: Value = self
            .client
            .get(format!("{}/status", self.base))
            .send()
            .await
            .expect("status sent")
            .json()
            .await
            .expect("status JSON");
        status["outbox"]["counts"].clone()
    }

    /// Polls `/status` until `state` counts `n` rows, for at most 20 s: the binary runs its own
    /// worker on its own clock, so there is nothing to drive.
    pub async fn wait_for_count(&self, state: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let counts = self.counts().await;
            if counts[state] == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} {state} rows in 20 s: {counts}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One delivery for `email` refused permanently by the sandbox (400, which the worker does
    /// not retry), then the fault cleared; the row's id.
    pub async fn fail_one_row(&self, email: &str) -> i64 {
        self.set_faults(json!({"error_rate": 1.0, "error_status": 400}))
            .await;
        let id = self.post_contact(email).await;
        self.wait_for_count("failed", 1).await;
        self.set_faults(json!({})).await;
        id
    }

    /// The sandbox's guests with `email`, and its guests in all.
    pub async fn guests(&self, email: &str) -> (usize, usize) {
        let guests: Value = self
            .client
            .get(format!("{}/_sandbox/guests", self.sandbox))
            .send()
            .await
            .expect("guests sent")
            .json()
            .await
            .expect("guests JSON");
        let all = guests["data"].as_array().cloned().unwrap_or_default();
        let matching = all.iter().filter(|guest| guest["email"] == email).count();
        (matching, all.len())
    }
}
