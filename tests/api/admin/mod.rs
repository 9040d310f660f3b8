//! The admin API an operator drives: finding deliveries by filter and page, retrying and
//! cancelling one row or a bounded set, the audit trail, and the command line over the same.

mod audit;
mod cli;
mod list;
mod retried;
mod retry;

use serde_json::Value;
use sqlx::AnyPool;
use tallyfy_sandbox::SandboxConfig;

use crate::delivery::{DeliveryEnv, delivery_env_with};
use crate::helpers::{Overrides, TestApp, spawn_app_with};

pub const TOKEN: &str = "admin-token-for-tests";

/// An app with the admin endpoints open and no delivery.
pub async fn admin_app() -> TestApp {
    spawn_app_with(&[("BRIDGE__ADMIN__TOKEN", TOKEN.into())]).await
}

/// The sandbox and an app delivering to it (worker driven by the test), admin endpoints open.
pub async fn admin_env(config: SandboxConfig, overrides: Overrides<'_>) -> DeliveryEnv {
    let mut settings = vec![("BRIDGE__ADMIN__TOKEN", TOKEN.to_string())];
    settings.extend(overrides.iter().cloned());
    delivery_env_with(config, &settings).await
}

/// GET with the admin token: status and JSON body.
pub async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// POST with the admin token (a JSON body when given).
pub async fn post(app: &TestApp, path: &str, body: Option<Value>) -> reqwest::Response {
    let request = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("sent")
}

/// POST and read the JSON answer.
pub async fn post_json(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let response = post(app, path, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// One outbox row as a test arranges it, straight into the file.
pub struct Seed<'a> {
    pub source: &'a str,
    pub email: &'a str,
    pub state: &'a str,
    pub received_at: i64,
}

/// Inserts rows and returns their ids, in order.
pub async fn seed(db: &AnyPool, rows: &[Seed<'_>]) -> Vec<i64> {
    let mut ids = Vec::new();
    for row in rows {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (source, event_id, email, payload, state, next_attempt_at,
                                 received_at, updated_at)
             VALUES ($1, NULL, $2, '{}', $3, $4, $4, $4) RETURNING id",
        )
        .bind(row.source)
        .bind(row.email)
        .bind(row.state)
        .bind(row.received_at)
        .fetch_one(db)
        .await
        .expect("seeded");
        ids.push(id);
    }
    ids
}

/// The ids of a list answer, in order.
pub fn ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}
