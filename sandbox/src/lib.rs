//! A fake Tallyfy guest API with fault injection (5xx, hangs, create-then-drop, 429s), for
//! tests, demos and crash tests; it counts creates per email so duplicates become visible. An
//! OAuth token endpoint issues short-lived tokens the guest API then accepts.

mod cap;
mod config;
mod control;
mod guest;
mod guests;
mod oauth;
mod server;
mod state;
mod validate;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use config::{DuplicateMode, Faults, IdStyle, SandboxConfig};
pub use guest::SandboxGuest;
pub use state::Stats;

use state::Shared;

/// Entry point: `Sandbox::start` for in-process use, `run` for a foreground server.
pub struct Sandbox;

impl Sandbox {
    /// Binds `addr` (port 0 picks a free port) and serves on the current tokio runtime until
    /// `SandboxHandle::shutdown` or the handle is dropped.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> anyhow::Result<SandboxHandle> {
        if let Err(message) = control::check_faults(&config.faults) {
            bail!("Invalid sandbox faults: {message}");
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Failed to bind the sandbox to {addr}"))?;
        let addr = listener
            .local_addr()
            .context("Failed to read the sandbox's bound address")?;
        let shared = Arc::new(Shared::new(config));
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::accept_loop(listener, shared.clone(), stop.clone()));
        Ok(SandboxHandle {
            addr,
            shared,
            stop: stop.drop_guard(),
            task,
        })
    }
}

pub struct SandboxHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cancels the server's token when dropped (with the handle), so the server stops too.
    stop: DropGuard,
    task: JoinHandle<()>,
}

impl SandboxHandle {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (the bound IP unless it is a wildcard); no `/api` suffix.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// How many creates actually created a guest for this email (case-insensitive).
    pub fn create_count(&self, email: &str) -> u32 {
        self.shared.lock().create_count(email)
    }

    pub fn guests(&self) -> Vec<SandboxGuest> {
        self.shared.lock().guests()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Simulates an expired or rotated token: requests with the old one get 401.
    pub fn set_token(&self, token: impl Into<String>) {
        self.shared.lock().token = token.into();
    }

    /// Every access token issued so far stops working now (refresh tokens stay valid): the
    /// bridge's next call gets 401, as after an expiry, without a test waiting for one.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.expire_all();
    }

    /// An outage of the token endpoint: every request gets `status` (`None` ends it).
    pub fn fail_token_endpoint(&self, status: Option<u16>) {
        self.shared.lock().tokens.fail_with = status;
    }

    /// Refresh tokens issued so far are refused from now on (`invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().tokens.revoke_refresh();
    }

    /// The next `count` guest API requests get 429 with `Retry-After: retry_after_secs`.
    pub fn burst_429(&self, count: u32, retry_after_secs: u64) {
        self.shared.lock().set_burst(count, retry_after_secs);
    }

    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting and closes open connections (in-flight requests get no response).
    pub async fn shutdown(self) {
        drop(self.stop);
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "sandbox server task failed");
        }
    }
}

impl fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
