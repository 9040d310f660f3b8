//! Counts every answer on `/webhooks/…` by source and status and times it, as middleware, so
//! no handler (and no early refusal: 401, 413, 503) can forget to.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::MetricsState;
use crate::ingest::CANONICAL_SOURCE;
use crate::ingest::sources::{hubspot, pipedrive, salesforce};

/// The `source` label of a webhook path: a configured or known CRM, else `unknown` (labels must
/// stay few whatever paths a client invents).
fn source_of(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/webhooks/")?;
    Some(match rest.split('/').next().unwrap_or("") {
        "contacts" => CANONICAL_SOURCE,
        hubspot::SOURCE => hubspot::SOURCE,
        pipedrive::SOURCE => pipedrive::SOURCE,
        salesforce::SOURCE => salesforce::SOURCE,
        _ => "unknown",
    })
}

pub async fn count_webhooks(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let counted = source_of(request.path()).and_then(|source| {
        let state = request.app_data::<web::Data<MetricsState>>()?;
        state
            .metrics
            .enabled()
            .then(|| (source, state.metrics.clone(), Instant::now()))
    });
    let response = next.call(request).await;
    if let Some((source, metrics, started)) = counted {
        let status = match &response {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.webhook(source, status.as_u16(), started.elapsed());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::source_of;

    #[test]
    fn only_webhook_paths_count_and_unknown_sources_share_one_label() {
        assert_eq!(source_of("/webhooks/contacts"), Some("canonical"));
        assert_eq!(source_of("/webhooks/salesforce/s3cret"), Some("salesforce"));
        assert_eq!(source_of("/webhooks/hubspot"), Some("hubspot"));
        assert_eq!(source_of("/webhooks/a-made-up-name"), Some("unknown"));
        assert_eq!(source_of("/status"), None);
        assert_eq!(source_of("/webhooksx"), None);
    }
}
