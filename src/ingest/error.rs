//! Every way a webhook can be refused, each mapped to one status code and the JSON body
//! `{"error": {"code", "message", "field"?}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::api_error::json_error;
use crate::outbox::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Deliberately vague: the caller learns nothing about which check failed.
    #[error("authentication failed")]
    Unauthorized,
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the content type is not {expected}")]
    UnsupportedMediaType { expected: &'static str },
    /// A compressed (or otherwise encoded) body: the bridge reads bodies only as sent.
    #[error("Content-Encoding is not supported: send the body uncompressed (identity)")]
    UnsupportedEncoding,
    /// Not UTF-8, which JSON (RFC 8259 §8.1) and Salesforce's XML require.
    #[error("{message}")]
    InvalidEncoding { message: String },
    #[error("{message}")]
    MalformedJson { message: String },
    #[error("{message}")]
    MalformedXml { message: String },
    #[error("{message}")]
    Invalid {
        field: String,
        code: &'static str,
        message: String,
    },
    #[error("the body could not be read")]
    BodyRead,
    /// The body did not arrive in time: the connection is closed so it cannot be held open.
    #[error("the body did not arrive within {secs} s")]
    BodyTimeout { secs: f64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    pub fn invalid(field: &str, code: &'static str, message: &str) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            code,
            message: message.to_owned(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::TooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::InvalidEncoding { .. } => "invalid_encoding",
            Self::MalformedJson { .. } => "malformed_json",
            Self::MalformedXml { .. } => "malformed_xml",
            Self::Invalid { code, .. } => code,
            Self::BodyRead => "bad_request",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::Store(_) => "unavailable",
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } | Self::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::MalformedJson { .. }
            | Self::MalformedXml { .. }
            | Self::InvalidEncoding { .. }
            | Self::BodyRead => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let field = match self {
            Self::Invalid { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut response = json_error(self.status_code(), self.code(), self.to_string(), field);
        if matches!(self, Self::BodyTimeout { .. }) {
            response.headers_mut().insert(
                actix_web::http::header::CONNECTION,
                actix_web::http::header::HeaderValue::from_static("close"),
            );
        }
        if matches!(self, Self::Store(_)) {
            // Tell well-behaved senders when to come back.
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("5"),
            );
        }
        response
    }
}
