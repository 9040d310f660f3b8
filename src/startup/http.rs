//! The HTTP side of the application: the actix server with its limits and middleware, and
//! serving it until shutdown.

use std::future::Future;
use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::api_error::json_error;
use crate::configuration::HttpSettings;
use crate::console::{self, ConsoleState};
use crate::ingest::{self, IngestState};
use crate::metrics::{self, MetricsState};
use crate::ops::{self, OpsState};
use crate::request_span::RedactedRootSpan;
use crate::status::{self, StatusState};

/// What the endpoints share.
pub(super) struct Endpoints {
    pub ingest: web::Data<IngestState>,
    pub status: web::Data<StatusState>,
    pub ops: web::Data<OpsState>,
    pub metrics: web::Data<MetricsState>,
    pub console: web::Data<ConsoleState>,
}

/// The server on `listener`, started (actix serves once the returned future is polled).
pub(super) fn server(
    settings: &HttpSettings,
    listener: TcpListener,
    endpoints: Endpoints,
) -> anyhow::Result<Server> {
    let Endpoints {
        ingest,
        status,
        ops,
        metrics,
        console,
    } = endpoints;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(metrics::count_webhooks))
            .wrap(from_fn(echo_request_id))
            .wrap(TracingLogger::<RedactedRootSpan>::new())
            .app_data(ingest.clone())
            .app_data(status.clone())
            .app_data(ops.clone())
            .app_data(metrics.clone())
            .app_data(console.clone())
            .configure(ingest::routes)
            .configure(status::routes)
            .configure(ops::routes)
            .configure(metrics::routes)
            .configure(crate::openapi::routes)
            .configure(console::routes)
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    let workers = match settings.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let connections = max_connections(settings.max_connections);
    server = server
        .workers(workers)
        // actix counts per worker; at least one each so no worker is starved.
        .max_connections(connections.div_ceil(workers).max(1));
    tracing::info!(workers, max_connections = connections, "HTTP limits");
    Ok(server.run())
}

/// Serves until `shutdown` completes, then stops accepting and lets in-flight requests finish.
pub(super) async fn serve(
    server: Server,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
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

/// An unknown path, or (405) a known one with another method.
async fn not_found(request: actix_web::HttpRequest) -> HttpResponse {
    if let Some(refusal) = crate::openapi::method_not_allowed(&request) {
        return refusal;
    }
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
        None,
    )
}
