//! The sandbox's HTTP plumbing on hyper: accept loop, per-connection tasks that can be killed
//! mid-request (to close without any response), routing, and JSON reply helpers.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::state::Shared;
use super::{control, guests, oauth};

pub(crate) type Resp = Response<Full<Bytes>>;

/// Largest request body read; guest bodies are tiny.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// A handler's verdict: answer, or hang up without a word (the fault Tallyfy clients fear).
pub(crate) enum Reply {
    Send(Resp),
    Drop,
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                // Usually fd exhaustion; back off instead of spinning.
                Err(err) => {
                    tracing::warn!(error = %err, "sandbox accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            // Shutdown asked, or the handle was dropped.
            () = shutdown.cancelled() => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let kill = Arc::new(Notify::new());
    let kill_from_handler = kill.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let kill = kill_from_handler.clone();
        async move {
            match route(req, &shared).await {
                Reply::Send(resp) => Ok::<_, Infallible>(resp),
                Reply::Drop => {
                    // The select below drops the connection, and this future with it.
                    kill.notify_one();
                    std::future::pending().await
                }
            }
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "sandbox connection ended with an error");
            }
        }
        // Dropping `conn` closes the socket: the client gets EOF/RST and no response.
        _ = kill.notified() => {}
        () = shutdown.cancelled() => {}
    }
}

async fn route(req: Request<Incoming>, shared: &Arc<Shared>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/_sandbox") {
        return Reply::Send(control::handle(req, rest, shared).await);
    }
    if oauth::is_token_path(&path) && req.method() == hyper::Method::POST {
        return Reply::Send(oauth::handle(req, shared).await);
    }
    match guests::GuestRoute::parse(req.method(), &path, req.uri().query()) {
        Some(route) => guests::handle(req, route, shared).await,
        None => Reply::Send(not_found()),
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Resp {
    json_with_headers(status, body, &[])
}

pub(crate) fn json_with_headers(
    status: StatusCode,
    body: &Value,
    headers: &[(HeaderName, HeaderValue)],
) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let map = resp.headers_mut();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        map.insert(name.clone(), value.clone());
    }
    resp
}

pub(crate) fn not_found() -> Resp {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": true, "message": "Resource not found", "code": "RESOURCE_NOT_FOUND"}),
    )
}

pub(crate) fn bad_request(message: &str) -> Resp {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": true, "message": message}),
    )
}

/// The body as JSON, or a 400 saying why not.
pub(crate) async fn read_json(req: Request<Incoming>) -> Result<Value, Resp> {
    let body = Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|_| bad_request("The request body could not be read or is too large."))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|_| bad_request("The request body is not valid JSON."))
}
