//! The OpenAPI 3.1 document of every endpoint, derived from the handlers' own `#[utoipa::path]`
//! and answer types so it cannot drift from them, and `GET /openapi.json` serving it.

use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tallyfy-bridge",
        description = "CRM contact webhooks in, each email created once as a Tallyfy guest. \
            Every JSON error is `{\"error\": {\"code\", \"message\", \"field\"?}}`; unknown paths \
            answer 404 `not_found`. Reference: docs/endpoints.md."
    ),
    paths(
        crate::ingest::post_contact,
        crate::ingest::sources::post_source,
        crate::ingest::sources::post_crm_with_token,
        crate::status::status,
        crate::status::live,
        crate::status::ready,
        crate::metrics::scrape::scrape,
        crate::ops::delivery,
        crate::ops::guest,
        crate::ops::deliveries::list,
        crate::ops::deliveries::retry_one,
        crate::ops::deliveries::cancel_one,
        crate::ops::deliveries::retry_bulk,
        crate::ops::deliveries::cancel_bulk,
        crate::ops::audit::list,
        crate::ops::refused::list,
        crate::ops::reconcile::run,
        openapi_json,
    ),
    components(schemas(crate::api_error::ErrorBody, CrmSource, MemberId)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "webhooks", description = "Contacts in: the bridge's own format and each CRM's"),
        (name = "status", description = "Operators and orchestrators: status, health, metrics"),
        (name = "admin", description = "Operator look-ups and changes, behind `admin.token`"),
        (name = "console", description = "The operator console's HTML pages (docs/console.md)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The ways callers authenticate (docs/authentication.md, docs/crm.md).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        let basic = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Basic);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, scheme) in [
            (
                "admin_token",
                bearer("`Authorization: Bearer <admin.token>`"),
            ),
            (
                "metrics_token",
                bearer("`Authorization: Bearer <metrics.token>`, when it is set"),
            ),
            (
                "webhook_signature",
                header(
                    "webhook-signature",
                    "`ingest.auth.mode = \"signature\"` (the default): Standard Webhooks, \
                     `webhook-id`, `webhook-timestamp` (±5 min) and `webhook-signature: \
                     v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`",
                ),
            ),
            (
                "webhook_shared_secret",
                bearer("`ingest.auth.mode = \"shared_secret\"`: `Authorization: Bearer <secret>`"),
            ),
            (
                "webhook_basic",
                basic(
                    "`ingest.auth.mode = \"shared_secret\"`: HTTP Basic, the secret as the password",
                ),
            ),
            (
                "pipedrive_basic",
                basic("Pipedrive: HTTP Basic (`sources.pipedrive`)"),
            ),
            (
                "hubspot_signature",
                header(
                    "X-HubSpot-Signature-v3",
                    "HubSpot: signature v3 with `X-HubSpot-Request-Timestamp` (`sources.hubspot`)",
                ),
            ),
        ] {
            components.add_security_scheme(name, scheme);
        }
    }
}

/// The CRMs with a webhook path; documentation only (each adapter names its own `SOURCE`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CrmSource {
    Pipedrive,
    Hubspot,
    Salesforce,
}

/// The body of `POST /webhooks/contacts`. Documentation only: ingest reads the body field by
/// field (`ingest::contact`) so each problem names its field; the limits here are the same.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ContactWebhook {
    /// A plain `local@domain` address.
    #[schema(max_length = 254, format = Email)]
    email: String,
    #[schema(max_length = 200)]
    first_name: Option<String>,
    #[schema(max_length = 200)]
    last_name: Option<String>,
    #[schema(max_length = 200)]
    company_name: Option<String>,
    #[schema(max_length = 20)]
    phone_1: Option<String>,
    #[schema(max_length = 20)]
    phone_2: Option<String>,
    /// An IANA zone name, e.g. `Europe/Paris`.
    timezone: Option<String>,
    /// Tallyfy member user ids, each 1 to 2^53 − 1.
    #[schema(max_items = 100)]
    associated_members: Option<Vec<MemberId>>,
    #[schema(max_length = 2000)]
    company_url: Option<String>,
    #[schema(max_length = 2000)]
    contact_url: Option<String>,
    #[schema(max_length = 2000)]
    image_url: Option<String>,
    #[schema(max_length = 200)]
    opportunity_name: Option<String>,
    #[schema(max_length = 2000)]
    opportunity_url: Option<String>,
    /// The CRM's event id, for deduplication; the `webhook-id` header wins.
    #[schema(max_length = 255)]
    event_id: Option<String>,
}

/// The whole document: the JSON API and the console's HTML pages.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(crate::console::ConsoleApi::openapi());
    document
}

/// A Tallyfy member user id: 1 to 2^53 − 1, the largest id its JavaScript clients hold exactly.
#[derive(serde::Deserialize)]
pub struct MemberId;

impl utoipa::PartialSchema for MemberId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(9_007_199_254_740_991_i64))
            .into()
    }
}

impl utoipa::ToSchema for MemberId {}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document().to_json().unwrap_or_else(|error| {
        format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{error}\"}}}}")
    })
});

/// Each documented path's methods, as an `Allow` value (`GET`, `POST`).
static ALLOWED: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let document: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap_or_default();
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    paths
        .into_iter()
        .map(|(path, item)| {
            let methods = item.as_object().map(|item| {
                let mut methods: Vec<String> = item.keys().map(|m| m.to_uppercase()).collect();
                methods.sort_unstable();
                methods.join(", ")
            });
            (path, methods.unwrap_or_default())
        })
        .collect()
});

/// `405` with `Allow` for a request whose path is a route but whose method is not one of its
/// (`POST /status`); `None` for a path that is no route at all.
pub fn method_not_allowed(request: &HttpRequest) -> Option<HttpResponse> {
    let allowed = ALLOWED.get(&documented_path(&request.match_pattern()?))?;
    let allow = HeaderValue::from_str(allowed).ok()?;
    let mut response = crate::api_error::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {allowed}"),
        None,
    );
    response.headers_mut().insert(ALLOW, allow);
    Some(response)
}

/// A route pattern as the document writes it: `/deliveries/{id:[0-9]+}` is `/deliveries/{id}`.
pub fn documented_path(pattern: &str) -> String {
    let mut path = String::with_capacity(pattern.len());
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            ':' if path.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                && path.rfind('{') > path.rfind('}') =>
            {
                in_regex = true
            }
            '}' => {
                in_regex = false;
                path.push(c);
            }
            _ if in_regex => {}
            _ => path.push(c),
        }
    }
    path
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

/// This document (OpenAPI 3.1). Public: it holds no secrets.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

#[cfg(test)]
mod tests {
    use super::documented_path;

    #[test]
    fn a_segment_regex_is_left_out_of_the_documented_path() {
        assert_eq!(
            documented_path("/deliveries/{id:[0-9]+}"),
            "/deliveries/{id}"
        );
        assert_eq!(
            documented_path("/deliveries/{id:[0-9]+}/retry"),
            "/deliveries/{id}/retry"
        );
        assert_eq!(
            documented_path("/webhooks/{source}/{token}"),
            "/webhooks/{source}/{token}"
        );
        assert_eq!(documented_path("/status"), "/status");
    }
}
