//! The one JSON error shape of the whole HTTP API: `{"error": {"code", "message", "field"?}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

/// Every error answer of the JSON API.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// What went wrong, for programs: `unauthorized`, `not_found`, `bad_request`, `too_long`…
    pub code: &'a str,
    /// What went wrong, for people.
    pub message: String,
    /// The field, parameter or header at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

pub fn json_error(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field,
        },
    })
}
