//! The root span of every HTTP request, as tracing-actix-web's default builds it, except that
//! the path is logged with a webhook URL's secret segment replaced: `/webhooks/salesforce/[REDACTED]`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

pub const REDACTED: &str = "[REDACTED]";

pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let method = request.method().as_str().to_owned();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get("user-agent")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let connection = request.connection_info().clone();
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.flavor = ?request.version(),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %connection.realip_remote_addr().unwrap_or(""),
            http.user_agent = %user_agent,
            http.target = %redacted_target(request.path(), request.query_string()),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The path and query to log: under `/webhooks/{source}`, every further segment and the query
/// (where a CRM's URL carries its secret) become `[REDACTED]`; elsewhere an email (the
/// `/guests/{email}` segment, an `email=` parameter of the admin API or the console) does.
pub fn redacted_target(path: &str, query: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let Some(webhooks) = segments.iter().position(|s| *s == "webhooks") else {
        let path = match segments.iter().position(|s| *s == "guests") {
            Some(guests) if guests + 1 < segments.len() => {
                format!("{}/{REDACTED}", segments[..=guests].join("/"))
            }
            _ => path.to_owned(),
        };
        if query.is_empty() {
            return path;
        }
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("email", _)) => format!("email={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        return format!("{path}?{}", query.join("&"));
    };
    let kept = (webhooks + 2).min(segments.len());
    let mut target = segments[..kept].join("/");
    if segments.len() > kept {
        target.push('/');
        target.push_str(REDACTED);
    }
    if !query.is_empty() {
        target.push('?');
        target.push_str(REDACTED);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_paths_secret_segment_and_query_and_emails_elsewhere_are_redacted() {
        for (path, query, logged) in [
            (
                "/webhooks/salesforce/s3cr3t",
                "",
                "/webhooks/salesforce/[REDACTED]",
            ),
            (
                "/webhooks/salesforce/s3cr3t/more",
                "",
                "/webhooks/salesforce/[REDACTED]",
            ),
            (
                "//webhooks/salesforce/s3cr3t",
                "",
                "//webhooks/salesforce/[REDACTED]",
            ),
            (
                "/webhooks/salesforce/",
                "",
                "/webhooks/salesforce/[REDACTED]",
            ),
            (
                "/webhooks/salesforce",
                "token=s3cr3t",
                "/webhooks/salesforce?[REDACTED]",
            ),
            ("/webhooks/salesforce", "", "/webhooks/salesforce"),
            ("/webhooks", "", "/webhooks"),
            ("/status", "", "/status"),
            ("/deliveries/7", "x=1", "/deliveries/7?x=1"),
            ("/guests/ada%40example.com", "", "/guests/[REDACTED]"),
            ("/guests", "", "/guests"),
            (
                "/console/search",
                "email=ada%40example.com",
                "/console/search?email=[REDACTED]",
            ),
            (
                "/deliveries",
                "state=failed&email=ada@example.com&limit=5",
                "/deliveries?state=failed&email=[REDACTED]&limit=5",
            ),
        ] {
            assert_eq!(redacted_target(path, query), logged, "{path}?{query}");
        }
    }
}
