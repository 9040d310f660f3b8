//! Webhooks in: `POST /webhooks/contacts` (the bridge's own format) and `POST /webhooks/{source}`
//! (a CRM's). A 2xx only once the events are committed; nothing is stored for a refused request.

pub mod auth;
pub mod contact;
pub mod error;
mod json;
pub mod sources;

use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::event::StoredEvent;
use crate::outbox::{NewEvent, StoreError, WriterHandle};
use auth::InboundAuth;
pub use error::IngestError;

/// The `source` column value for the bridge's own format.
pub const CANONICAL_SOURCE: &str = "canonical";

/// What the ingest handlers share.
pub struct IngestState {
    pub auth: InboundAuth,
    pub writer: WriterHandle,
    pub max_body_bytes: usize,
    /// How long a body may take to arrive (`http.body_timeout_ms`).
    pub body_timeout: std::time::Duration,
    pub sources: sources::Sources,
}

/// `POST /webhooks/contacts`'s 2xx answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The outbox row; for a duplicate, the first row of that event id.
    pub id: i64,
    pub status: AcceptedStatus,
}

#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedStatus {
    /// Stored now (202).
    Queued,
    /// The event id was seen before; nothing stored (200).
    Duplicate,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks/contacts")
            .route(web::post().to(post_contact))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/webhooks/{source}")
            .route(web::post().to(sources::post_source))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        // A CRM that cannot sign its requests (Salesforce) calls a URL with a secret segment.
        web::resource("/webhooks/{source}/{token}")
            .route(web::post().to(sources::post_source))
            .default_service(web::to(method_not_allowed)),
    );
}

async fn method_not_allowed() -> HttpResponse {
    let mut response = crate::api_error::json_error(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use POST".into(),
        None,
    );
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static("POST"),
    );
    response
}

/// The bridge's own contact-created event. Checks run in this order: body size,
/// `Content-Encoding`, UTF-8, authentication, content type, JSON, fields, commit.
#[utoipa::path(post, path = "/webhooks/contacts", tag = "webhooks",
    security(("webhook_signature" = []), ("webhook_shared_secret" = []), ("webhook_basic" = []), ()),
    params(
        ("webhook-id" = Option<String>, Header, description = "The event id (Standard Webhooks); wins over `event_id`, ≤ 255 characters"),
        ("webhook-timestamp" = Option<String>, Header, description = "Unix seconds (signature mode)"),
        ("webhook-signature" = Option<String>, Header, description = "`v1,<base64 HMAC-SHA256>` (signature mode)"),
    ),
    request_body(content = crate::openapi::ContactWebhook, content_type = "application/json"),
    responses(
        (status = 202, description = "Stored: the outbox row is committed", body = Accepted,
            links(
                ("delivery" = (operation_id = "delivery", parameters(("id" = "$response.body#/id")))),
                ("retry" = (operation_id = "retry_one", parameters(("id" = "$response.body#/id")))),
                ("cancel" = (operation_id = "cancel_one", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 200, description = "Repeated event id; nothing stored", body = Accepted),
        (status = 400, description = "Not JSON or not an object (`malformed_json`), not UTF-8 (`invalid_encoding`), unreadable (`bad_request`)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Authentication failed (`unauthorized`)", body = crate::api_error::ErrorBody),
        (status = 404, description = "`ingest.auth.mode = \"disabled\"`", body = crate::api_error::ErrorBody),
        (status = 405, description = "Another method (`method_not_allowed`); `Allow: POST`", body = crate::api_error::ErrorBody),
        (status = 408, description = "The body did not arrive in time (`request_timeout`)", body = crate::api_error::ErrorBody),
        (status = 413, description = "The body is over `http.max_body_bytes` (`payload_too_large`)", body = crate::api_error::ErrorBody),
        (status = 415, description = "A `Content-Encoding` (`unsupported_encoding`) or not JSON (`unsupported_media_type`)", body = crate::api_error::ErrorBody),
        (status = 422, description = "A field is wrong; `field` names it", body = crate::api_error::ErrorBody),
        (status = 503, description = "Not committed (`unavailable`); `Retry-After: 5`", body = crate::api_error::ErrorBody,
            headers(("Retry-After" = String, description = "Seconds: 5"))),
    ))]
#[tracing::instrument(skip_all, fields(event_id, outbox_id))]
pub async fn post_contact(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    if matches!(state.auth, InboundAuth::Disabled) {
        return Ok(crate::api_error::json_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "the bridge's own webhook format is disabled (ingest.auth.mode)".into(),
            None,
        ));
    }
    let result = accept(request, payload, state).await;
    if let Err(error) = &result {
        // Operators see why a CRM's webhook was refused; the payload itself is never logged.
        match error {
            IngestError::Invalid { field, code, .. } => {
                tracing::info!(field = %field, code, "Webhook refused")
            }
            // Already logged, with more detail, where they happened.
            IngestError::Store(_) | IngestError::Unauthorized => {}
            other => tracing::info!(reason = %other, "Webhook refused"),
        }
    }
    result
}

async fn accept(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, IngestError> {
    let body = read_body(&request, payload, state.max_body_bytes, state.body_timeout).await?;
    check_encoding(request.headers(), &body)?;
    state
        .auth
        .verify(request.headers(), &body)
        .map_err(|failure| {
            tracing::warn!(reason = %failure, "Webhook refused: authentication failed");
            IngestError::Unauthorized
        })?;
    require_json(request.headers())?;
    let contact = contact::parse(&body)?;

    // The signed `webhook-id` header wins: it is what Standard Webhooks keeps across retries.
    let header_id = request
        .headers()
        .get(standardwebhooks::HEADER_WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if header_id.is_some_and(|id| id.chars().count() > contact::EVENT_ID_MAX) {
        return Err(IngestError::invalid(
            "webhook-id",
            "too_long",
            "the webhook-id header must be at most 255 characters",
        ));
    }
    let event_id = header_id.map(str::to_owned).or(contact.event_id);
    if let Some(id) = &event_id {
        tracing::Span::current().record("event_id", id.as_str());
    }

    let payload = StoredEvent::Guest {
        guest: contact.guest,
    }
    .encode();
    let accepted = state
        .writer
        .append(NewEvent {
            source: CANONICAL_SOURCE,
            event_id,
            email: Some(contact.normalised_email.into()),
            crm_record: None,
            payload,
            record: None,
        })
        .await?;
    use crate::outbox::Accepted as Stored;
    let (id, status) = match accepted {
        Stored::Stored { id } => (id, AcceptedStatus::Queued),
        Stored::Duplicate { id } => (id, AcceptedStatus::Duplicate),
        // Only an update of a CRM record is ever not needed; this event names none.
        Stored::NotNeeded => return Err(StoreError::Unavailable.into()),
    };
    tracing::Span::current().record("outbox_id", id);
    Ok(match status {
        AcceptedStatus::Queued => {
            tracing::info!("Event queued");
            HttpResponse::Accepted().json(Accepted { id, status })
        }
        AcceptedStatus::Duplicate => {
            tracing::info!("Repeated event acknowledged; nothing stored");
            HttpResponse::Ok().json(Accepted { id, status })
        }
    })
}

/// Reads the whole body, refusing it as soon as it passes `limit` (413), before auth needs it.
async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<web::Bytes, IngestError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngestError::TooLarge { limit });
    }
    // A sender that stalls its body must not hold a connection (and a file descriptor) for long.
    match tokio::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Err(_) => {
            tracing::info!(
                timeout_ms = timeout.as_millis() as u64,
                "Webhook body timed out; closing the connection"
            );
            Err(IngestError::BodyTimeout {
                secs: timeout.as_secs_f64(),
            })
        }
        Ok(Err(_)) => Err(IngestError::TooLarge { limit }),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "Failed to read a webhook body");
            Err(IngestError::BodyRead)
        }
    }
}

/// The body is as sent and is UTF-8, checked before authentication so an encoding problem is
/// named as one (not as a signature mismatch): any `Content-Encoding` but `identity` is a 415
/// (nothing here decompresses, so gzip would only fail later as bad JSON), other bytes a 400.
fn check_encoding(headers: &HeaderMap, body: &[u8]) -> Result<(), IngestError> {
    let encoded = headers.get_all(CONTENT_ENCODING).any(|value| {
        value.to_str().map_or(true, |v| {
            v.split(',')
                .map(str::trim)
                .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
        })
    });
    if encoded {
        return Err(IngestError::UnsupportedEncoding);
    }
    std::str::from_utf8(body).map_err(|e| IngestError::InvalidEncoding {
        message: format!("the body is not UTF-8: {e}"),
    })?;
    Ok(())
}

/// The `Content-Type` without its parameters, lowercased (`text/xml; charset=utf-8` → `text/xml`).
fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// `application/json` or any `+json` type, with or without parameters.
fn require_json(headers: &HeaderMap) -> Result<(), IngestError> {
    match media_type(headers) {
        Some(t)
            if t == "application/json"
                || (t.starts_with("application/") && t.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(IngestError::UnsupportedMediaType { expected: "JSON" }),
    }
}
