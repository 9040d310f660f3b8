//! What every `/console` response gets: 404 when no admin token is configured, and the headers
//! that keep pages out of caches and frames and forbid every script.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use super::ConsoleState;
use crate::api_error::json_error;

/// No script may run, styles only from the console itself, forms only post back to it.
pub(super) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let configured = request
        .app_data::<web::Data<ConsoleState>>()
        .is_some_and(|state| state.admin_token.is_some());
    let mut response = if configured {
        next.call(request).await?.map_into_boxed_body()
    } else {
        let refusal = json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint".into(),
            None,
        );
        request.into_response(refusal).map_into_boxed_body()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}
