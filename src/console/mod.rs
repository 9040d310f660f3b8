//! The ops console at `/console`: server-rendered HTML (maud) over the same store and the same
//! operations as the admin API, behind the admin token and a login session; plain links and
//! forms, no JavaScript. 404 everywhere when no admin token is configured, as the admin API.

mod bulk;
mod chart;
mod deliveries;
mod form;
mod guard;
mod layout;
mod overview;
mod refused;
mod row;
mod search;
mod session;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::outbox::Store;

/// The acting principal the console's changes are audited as.
pub const PRINCIPAL: &str = "console";

pub struct ConsoleState {
    pub store: Arc<dyn Store>,
    /// The admin token: entered once at login. `None`: every console path answers 404.
    pub admin_token: Option<SecretString>,
    /// The ledger is per organisation; `None` when delivery is not configured.
    pub org_id: Option<String>,
    /// Wakes the delivery worker, as the admin API's retry does.
    pub wake: Arc<Notify>,
    /// `admin.console_session_secs`.
    pub session_secs: u64,
    /// The CRMs that can be reconciled, for the overview.
    pub reconciler: Arc<crate::reconcile::Reconciler>,
}

/// Events accepted and rows delivered in one hour, for the overview's chart.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HourCounts {
    /// ms since the epoch, on an hour boundary.
    pub hour_start: i64,
    pub accepted: i64,
    pub delivered: i64,
}

/// A login as stored: the SHA-256 of the cookie's id, never the id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSession {
    pub id_hash: Vec<u8>,
    /// The synchronizer token every POST form of this session carries.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(guard::guard))
            .route("", web::get().to(overview::overview))
            .route("/login", web::get().to(session::login_page))
            .route("/login", web::post().to(session::login))
            .route("/logout", web::post().to(session::logout))
            .route("/static/console.css", web::get().to(stylesheet))
            .route("/deliveries", web::get().to(deliveries::list))
            .route("/deliveries/{id}", web::get().to(row::row))
            .route("/deliveries/{id}/retry", web::post().to(row::retry))
            .route("/deliveries/{id}/cancel", web::post().to(row::cancel))
            .route("/bulk", web::get().to(bulk::confirm))
            .route("/bulk", web::post().to(bulk::apply))
            .route("/bulk/done", web::get().to(bulk::done))
            .route("/search", web::get().to(search::search))
            .route("/refused", web::get().to(refused::list))
            .default_service(web::to(layout::not_found)),
    );
}

const CSS: &str = include_str!("console.css");

#[utoipa::path(
    get,
    path = "/console/static/console.css",
    tag = "console",
    responses((status = 200, description = "The console's stylesheet", body = String, content_type = "text/css"))
)]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(CSS)
}

/// The console's pages, for the service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    overview::overview,
    session::login_page,
    session::login,
    session::logout,
    stylesheet,
    deliveries::list,
    row::row,
    row::retry,
    row::cancel,
    bulk::confirm,
    bulk::apply,
    bulk::done,
    search::search,
    refused::list,
))]
pub struct ConsoleApi;

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::ConsoleApi;

    #[test]
    fn every_console_page_is_in_the_openapi_document() {
        let document = ConsoleApi::openapi();
        let paths: Vec<&str> = document.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/console",
            "/console/login",
            "/console/logout",
            "/console/static/console.css",
            "/console/deliveries",
            "/console/deliveries/{id}",
            "/console/deliveries/{id}/retry",
            "/console/deliveries/{id}/cancel",
            "/console/bulk",
            "/console/bulk/done",
            "/console/search",
            "/console/refused",
        ] {
            assert!(paths.contains(&path), "{path}: {paths:?}");
        }
        let json = document.to_json().unwrap_or_default();
        assert!(json.contains("text/html"), "{json}");
    }
}
