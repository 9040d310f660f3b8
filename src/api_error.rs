//! The one JSON error shape of the whole HTTP API: `{"error": {"code", "message", "field"?}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

pub fn json_error(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> HttpResponse {
    HttpResponse::build(status).json(Body {
        error: Detail {
            code,
            message,
            field,
        },
    })
}
