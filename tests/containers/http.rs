//! HTTP as the CRM and the operator use it against the containers: signed and shared-secret
//! webhooks, the bridge's /status, the sandbox's control API.

use std::collections::BTreeMap;

use serde_json::Value;

pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Posts `body` as a Standard Webhooks sender with event id `id`; the status, or `None` if
/// the bridge could not be reached.
pub async fn post_signed(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    body: &str,
) -> Option<u16> {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(SIGNING_SECRET)
        .expect("secret")
        .sign(id, timestamp, body.as_bytes())
        .expect("sign");
    client
        .post(format!("{base}/webhooks/contacts"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The sandbox's guests: email → (creates, duplicate_attempts).
pub async fn guests(
    client: &reqwest::Client,
    sandbox: &str,
) -> Option<BTreeMap<String, (u64, u64)>> {
    let body = get_json(client, &format!("{sandbox}/_sandbox/guests")).await?;
    let guests = body["data"].as_array()?;
    Some(
        guests
            .iter()
            .map(|g| {
                (
                    g["email"].as_str().unwrap_or_default().to_owned(),
                    (
                        g["creates"].as_u64().unwrap_or(0),
                        g["duplicate_attempts"].as_u64().unwrap_or(0),
                    ),
                )
            })
            .collect(),
    )
}

/// The bridge's outbox counts (`queued`, `in_flight`, `retrying`, `delivered`, `failed`).
pub async fn outbox_counts(
    client: &reqwest::Client,
    bridge: &str,
) -> Option<BTreeMap<String, u64>> {
    let status = get_json(client, &format!("{bridge}/status")).await?;
    let counts = status["outbox"]["counts"].as_object()?;
    Some(
        counts
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect(),
    )
}
