//! Wires settings, database, writer and HTTP server into an [`Application`] that tests start on
//! port 0 and `main` runs until a signal arrives.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};
use anyhow::Context;
use sqlx::SqlitePool;
use tokio::sync::{Notify, watch};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::api_error::json_error;
use crate::configuration::Settings;
use crate::crm::CrmClients;
use crate::delivery::Worker;
use crate::delivery::policy::{Clock, SystemClock};
use crate::ingest::auth::InboundAuth;
use crate::ingest::sources::Sources;
use crate::ingest::{self, IngestState};
use crate::ops::{self, OpsState};
use crate::outbox::{self, DatabaseFile, writer};
use crate::request_span::RedactedRootSpan;
use crate::status::{self, StatusState};
use crate::tallyfy::{ClientConfig, TallyfyClient};

pub struct Application {
    /// 0 when `http.enabled` is false.
    port: u16,
    server: Option<Server>,
    /// Owns the write connection; stopped after the HTTP server so queued events still commit.
    writer: writer::WriterTask,
    worker: Option<Arc<Worker>>,
    /// Ingest commits wake the worker through this.
    wake: Arc<Notify>,
    pool: SqlitePool,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let auth = InboundAuth::from_settings(&settings.ingest.auth)?;
        if matches!(auth, InboundAuth::None) {
            tracing::warn!(
                "ingest.auth.mode = \"none\": unauthenticated webhooks are accepted; use only on a trusted network"
            );
        }
        let pool = outbox::open_pool(&settings.database).await?;
        if settings.database.migrate_on_start {
            outbox::migrate(&pool).await?;
        }
        outbox::check_ready(&pool).await.context(
            "The database is not ready: not migrated (run `tallyfy-bridge migrate`), read-only for this user, or its disk is full",
        )?;
        outbox::identity::adopt(&pool, &settings.database.path).await?;
        let file = Arc::new(DatabaseFile::open(&settings.database.path)?);

        let wake = Arc::new(Notify::new());
        let (writer_handle, writer) = writer::spawn(writer::WriterSetup {
            conn: outbox::open_writer_connection(&settings.database).await?,
            file: file.clone(),
            max_batch: settings.ingest.max_batch,
            queue_capacity: settings.ingest.queue_capacity,
            committed: wake.clone(),
        });
        let worker = if settings.delivery.enabled {
            Some(Arc::new(build_worker(
                &settings,
                pool.clone(),
                Arc::new(SystemClock),
            )?))
        } else {
            tracing::warn!("delivery.enabled = false: events are stored but not sent to Tallyfy");
            None
        };
        if !settings.http.enabled {
            return Ok(Self {
                port: 0,
                server: None,
                writer,
                worker,
                wake,
                pool,
            });
        }

        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .with_context(|| {
                format!(
                    "Failed to listen on {}:{}",
                    settings.http.host, settings.http.port
                )
            })?;
        let port = listener.local_addr()?.port();

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
        let ingest = web::Data::new(IngestState {
            auth,
            writer: writer_handle.clone(),
            max_body_bytes: settings.http.max_body_bytes,
            body_timeout: settings.http.body_timeout,
            sources,
        });
        let ops = web::Data::new(OpsState {
            pool: pool.clone(),
            admin_token: settings.admin.token.as_ref().map(|t| t.to_secret_string()),
            org_id: settings.tallyfy.org_id.clone(),
        });
        let status = web::Data::new(StatusState {
            pool: pool.clone(),
            file,
            writer: writer_handle,
            started: Instant::now(),
            webhooks,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(echo_request_id))
                .wrap(TracingLogger::<RedactedRootSpan>::new())
                .app_data(ingest.clone())
                .app_data(status.clone())
                .app_data(ops.clone())
                .configure(ingest::routes)
                .configure(status::routes)
                .configure(ops::routes)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout.as_secs());
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let connections = max_connections(settings.http.max_connections);
        server = server
            .workers(workers)
            // actix counts per worker; at least one each so no worker is starved.
            .max_connections(connections.div_ceil(workers).max(1));
        tracing::info!(workers, max_connections = connections, "HTTP limits");
        tracing::info!(port, database = %settings.database.path.display(), "Listening");
        Ok(Self {
            port,
            server: Some(server.run()),
            writer,
            worker,
            wake,
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish,
    /// lets running deliveries finish, commits what the writer holds and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            server,
            writer,
            worker,
            wake,
            pool,
            ..
        } = self;
        let (stop_worker, worker_stopped) = watch::channel(false);
        let checkpointer = tokio::spawn(checkpoint_periodically(
            pool.clone(),
            worker_stopped.clone(),
        ));
        let worker = worker.map(|worker| tokio::spawn(worker.run(wake, worker_stopped)));
        let result = match server {
            Some(server) => serve(server, shutdown).await,
            None => {
                shutdown.await;
                Ok(())
            }
        };
        tracing::info!("Shutting down: letting running deliveries finish");
        let _ = stop_worker.send(true);
        if let Some(worker) = worker
            && let Err(error) = worker.await
        {
            tracing::error!(%error, "The delivery worker failed");
        }
        writer.shutdown().await;
        let _ = checkpointer.await;
        if let Err(error) = outbox::checkpoint(&pool, true).await {
            tracing::warn!(error = %format!("{error:#}"), "Failed to checkpoint at shutdown");
        }
        pool.close().await;
        tracing::info!("Stopped");
        result
    }
}

/// Keeps the WAL short without making any webhook's commit pay for it.
async fn checkpoint_periodically(pool: SqlitePool, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(error) = outbox::checkpoint(&pool, false).await {
            tracing::warn!(error = %format!("{error:#}"), "Failed to checkpoint the WAL");
        }
    }
}

async fn serve(server: Server, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("The HTTP server failed"),
        () = shutdown => {
            tracing::info!("Shutting down: finishing in-flight requests");
            // The server future must keep being polled for the stop command to run.
            let ((), result) = tokio::join!(handle.stop(true), &mut server);
            result.context("The HTTP server failed while stopping")
        }
    }
}

/// The worker with a Tallyfy client made from the validated settings.
pub fn build_worker(
    settings: &Settings,
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Worker> {
    let tallyfy = &settings.tallyfy;
    let (Some(org_id), Some(token)) = (
        tallyfy.org_id.clone(),
        tallyfy.token.as_ref().map(|t| t.to_secret_string()),
    ) else {
        anyhow::bail!(
            "invalid configuration: `tallyfy.org_id` and `tallyfy.token` are required for delivery"
        );
    };
    let client = TallyfyClient::new(ClientConfig {
        base_url: tallyfy.base_url.clone(),
        org_id: org_id.clone(),
        token,
        connect_timeout: tallyfy.connect_timeout,
        request_timeout: tallyfy.request_timeout,
    })?;
    Ok(Worker::new(
        pool,
        Arc::new(DatabaseFile::open(&settings.database.path)?),
        client,
        org_id,
        &settings.delivery,
        clock,
        CrmClients::from_settings(&settings.sources)?,
    ))
}

/// `http.max_connections`, or with 0 three quarters of the open-file limit: the rest stays for
/// the database, the Tallyfy and CRM clients and the listening socket.
fn max_connections(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(limit / 4 * 3)
        .unwrap_or(usize::MAX)
        .clamp(16, 25_000)
}

/// Returns the request id of the tracing span as `x-request-id`, so a caller can quote it.
async fn echo_request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| HeaderValue::from_str(&id.to_string()).ok());
    let mut response = next.call(request).await?;
    if let Some(id) = id {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(response)
}

async fn not_found() -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
        None,
    )
}
