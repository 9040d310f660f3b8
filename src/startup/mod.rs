//! Wires settings, database, writer, worker and HTTP server into an [`Application`] that tests
//! start on port 0 and `main` runs until a signal arrives.

mod http;
mod retention;

use crate::reconcile::Reconciler;
use crate::reconcile::schedule::reconcile_periodically;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::console::ConsoleState;
use crate::crm::CrmClients;
use crate::delivery::Worker;
use crate::delivery::policy::{Clock, SystemClock};
use crate::ingest::IngestState;
use crate::ingest::auth::InboundAuth;
use crate::ingest::sources::Sources;
use crate::metrics::{Metrics, MetricsState};
use crate::ops::OpsState;
use crate::outbox::Store;
use crate::outbox::open::{Opened, open};
use crate::outbox::writer::{WriterSetup, WriterTask};
use crate::status::StatusState;
use crate::tallyfy::{ClientConfig, Credentials, TallyfyClient};

pub use retention::Retention;

/// How [`Application::build_with`] differs from production, for tests that move time by hand.
#[derive(Clone)]
pub struct BuildOptions {
    /// The clock every delivery decision reads.
    pub clock: Arc<dyn Clock>,
    /// False: `run_until_stopped` does not start the delivery loop, and a test drives the same
    /// worker with [`Worker::run_once`] through [`Application::worker`].
    pub delivery_loop: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            delivery_loop: true,
        }
    }
}

pub struct Application {
    /// 0 when `http.enabled` is false.
    port: u16,
    server: Option<Server>,
    /// Owns the write connection; stopped after the HTTP server so queued events still commit.
    writer: WriterTask,
    worker: Option<Arc<Worker>>,
    delivery_loop: bool,
    /// Ingest commits wake the worker through this.
    wake: Arc<Notify>,
    store: Arc<dyn Store>,
    /// Run every `retention.every_secs` by `run_until_stopped`.
    retention: Arc<Retention>,
    /// The Tallyfy credentials the worker calls with (`None` without delivery).
    credentials: Option<Arc<Credentials>>,
    /// Reconcile of the sources whose CRM API is configured, by hand and on schedule.
    reconciler: Arc<Reconciler>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(settings: Settings, options: BuildOptions) -> anyhow::Result<Self> {
        // Settings made or changed in code get the checks `Settings::load` makes.
        settings.validate()?;
        let auth = InboundAuth::from_settings(&settings.ingest.auth)?;
        if matches!(auth, InboundAuth::None) {
            tracing::warn!(
                "ingest.auth.mode = \"none\": unauthenticated webhooks are accepted; use only on a trusted network"
            );
        }
        let metrics = Metrics::new(settings.metrics.enabled);
        let wake = Arc::new(Notify::new());
        let Opened {
            store,
            writer: writer_handle,
            writer_task: writer,
        } = open(
            &settings.database,
            WriterSetup {
                max_batch: settings.ingest.max_batch,
                queue_capacity: settings.ingest.queue_capacity,
                committed: wake.clone(),
                metrics: metrics.clone(),
            },
        )
        .await?;
        let reconciler = Arc::new(Reconciler::from_settings(
            &settings.sources,
            store.clone(),
            writer_handle.clone(),
            metrics.clone(),
        )?);
        let retention = Arc::new(Retention::new(
            store.clone(),
            settings.retention.clone(),
            options.clock.clone(),
        ));
        let credentials = if settings.delivery.enabled {
            let clock = options.clock.clone();
            let now: crate::tallyfy::Now = Arc::new(move || clock.now_ms());
            let credentials = Credentials::from_settings(&settings.tallyfy, now)?;
            let credentials = Arc::new(credentials.with_metrics(metrics.clone()));
            tracing::info!(mode = credentials.mode().as_str(), "Tallyfy credentials");
            credentials.warn_if_expiring();
            Some(credentials)
        } else {
            None
        };
        let worker = if let Some(credentials) = &credentials {
            Some(Arc::new(build_worker(
                &settings,
                store.clone(),
                options.clock,
                &metrics,
                credentials.clone(),
            )?))
        } else {
            tracing::warn!("delivery.enabled = false: events are stored but not sent to Tallyfy");
            None
        };
        let mut app = Self {
            port: 0,
            server: None,
            writer,
            worker,
            delivery_loop: options.delivery_loop,
            wake,
            store,
            retention,
            credentials,
            reconciler,
        };
        if !settings.http.enabled {
            return Ok(app);
        }

        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .with_context(|| {
                format!(
                    "Failed to listen on {}:{}",
                    settings.http.host, settings.http.port
                )
            })?;
        app.port = listener.local_addr()?.port();

        let sources = Sources::from_settings(&settings.sources);
        tracing::info!(sources = ?sources.names(), "CRM webhook sources configured");
        let canonical = (!matches!(auth, InboundAuth::Disabled)).then_some("contacts");
        let webhooks = canonical
            .into_iter()
            .map(|name| format!("/webhooks/{name}"))
            .chain(sources.paths())
            .collect::<Vec<_>>();
        if webhooks.is_empty() {
            tracing::warn!(
                "ingest.auth.mode = \"disabled\" and no [sources] configured: no webhook is accepted"
            );
        }
        let endpoints = http::Endpoints {
            ingest: web::Data::new(IngestState {
                auth,
                writer: writer_handle.clone(),
                max_body_bytes: settings.http.max_body_bytes,
                body_timeout: settings.http.body_timeout,
                sources,
            }),
            ops: web::Data::new(OpsState {
                store: app.store.clone(),
                admin_token: settings.admin.token.as_ref().map(|t| t.to_secret_string()),
                org_id: settings.tallyfy.org_id.clone(),
                wake: app.wake.clone(),
                reconciler: app.reconciler.clone(),
            }),
            console: web::Data::new(ConsoleState {
                store: app.store.clone(),
                admin_token: settings.admin.token.as_ref().map(|t| t.to_secret_string()),
                org_id: settings.tallyfy.org_id.clone(),
                wake: app.wake.clone(),
                session_secs: settings.admin.console_session_secs,
                reconciler: app.reconciler.clone(),
            }),
            metrics: web::Data::new(MetricsState {
                metrics,
                token: settings
                    .metrics
                    .token
                    .as_ref()
                    .map(|t| t.to_secret_string()),
                store: app.store.clone(),
            }),
            status: web::Data::new(StatusState {
                store: app.store.clone(),
                writer: writer_handle,
                started: Instant::now(),
                webhooks,
                credentials: app.credentials.clone(),
                reconciler: app.reconciler.clone(),
            }),
        };
        app.server = Some(http::server(&settings.http, listener, endpoints)?);
        let database = settings.database.backend()?.describe();
        tracing::info!(port = app.port, %database, "Listening");
        Ok(app)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The worker this application delivers with (`None` when `delivery.enabled` is false).
    pub fn worker(&self) -> Option<Arc<Worker>> {
        self.worker.clone()
    }

    /// The prune this application runs on its schedule, for tests that run it by hand.
    pub fn retention(&self) -> Arc<Retention> {
        self.retention.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish,
    /// lets running deliveries finish, commits what the writer holds and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            server,
            writer,
            worker,
            delivery_loop,
            wake,
            store,
            retention,
            credentials,
            reconciler,
            ..
        } = self;
        // Stops the worker, the housekeeping and the pruner once the HTTP server has stopped.
        let stop = CancellationToken::new();
        let maintainer = tokio::spawn(maintain_periodically(store.clone(), stop.clone()));
        let pruner = tokio::spawn(retention::prune_periodically(retention, stop.clone()));
        let reconciles = tokio::spawn(reconcile_periodically(reconciler, stop.clone()));
        let expiry =
            credentials.map(|c| tokio::spawn(crate::tallyfy::watch_expiry(c, stop.clone())));
        let worker = worker
            .filter(|_| delivery_loop)
            .map(|worker| tokio::spawn(worker.run(wake, stop.clone())));
        let result = match server {
            Some(server) => http::serve(server, shutdown).await,
            None => {
                shutdown.await;
                Ok(())
            }
        };
        tracing::info!("Shutting down: letting running deliveries finish");
        stop.cancel();
        if let Some(worker) = worker
            && let Err(error) = worker.await
        {
            tracing::error!(%error, "The delivery worker failed");
        }
        writer.shutdown().await;
        let _ = maintainer.await;
        let _ = pruner.await;
        let _ = reconciles.await;
        if let Some(expiry) = expiry {
            let _ = expiry.await;
        }
        if let Err(error) = store.maintain(true).await {
            tracing::warn!(error = %format!("{error:#}"), "Database housekeeping at shutdown failed");
        }
        store.close().await;
        tracing::info!("Stopped");
        result
    }
}

/// The backend's housekeeping every second, off every webhook's path (SQLite: keep the WAL
/// short; PostgreSQL: fold the state counters).
async fn maintain_periodically(store: Arc<dyn Store>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(error) = store.maintain(false).await {
            tracing::warn!(error = %format!("{error:#}"), "Database housekeeping failed");
        }
    }
}

/// The worker with a Tallyfy client made from the validated settings.
fn build_worker(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
    credentials: Arc<Credentials>,
) -> anyhow::Result<Worker> {
    let tallyfy = &settings.tallyfy;
    let Some(org_id) = tallyfy.org_id.clone() else {
        anyhow::bail!("invalid configuration: `tallyfy.org_id` is required for delivery");
    };
    let client = TallyfyClient::new(ClientConfig {
        base_url: tallyfy.base_url.clone(),
        org_id: org_id.clone(),
        credentials,
        connect_timeout: tallyfy.connect_timeout,
        request_timeout: tallyfy.request_timeout,
    })?
    .with_metrics(metrics.clone());
    Ok(Worker::new(
        store,
        client,
        org_id,
        &settings.delivery,
        clock,
        CrmClients::from_settings(&settings.sources)?.with_metrics(metrics),
    )
    .with_metrics(metrics.clone()))
}
