//! Test fixtures: a sandbox on port 0 with a client pointed at it, and raw-request helpers
//! for checks the typed client cannot express (missing headers, control API).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tallyfy_bridge::domain::Guest;
use tallyfy_bridge::tallyfy::{ClientConfig, Credentials, TallyfyClient};
use tallyfy_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

pub const TOKEN: &str = "sandbox-token";
pub const ORG: &str = "demo-org";

pub fn config() -> SandboxConfig {
    SandboxConfig::default()
}

pub struct TestEnv {
    pub sandbox: SandboxHandle,
    pub client: TallyfyClient,
    pub http: reqwest::Client,
}

pub async fn spawn(config: SandboxConfig) -> TestEnv {
    spawn_with_timeout(config, Duration::from_secs(5)).await
}

pub async fn spawn_with_timeout(config: SandboxConfig, request_timeout: Duration) -> TestEnv {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sandbox = Sandbox::start(config, addr).await.expect("sandbox starts");
    let client = client_for(&sandbox.base_url(), ORG, request_timeout);
    TestEnv {
        sandbox,
        client,
        http: reqwest::Client::new(),
    }
}

pub fn client_for(base_url: &str, org: &str, request_timeout: Duration) -> TallyfyClient {
    TallyfyClient::new(ClientConfig {
        base_url: base_url.to_owned(),
        org_id: org.to_owned(),
        credentials: Arc::new(
            Credentials::personal(SecretString::from(TOKEN), Arc::new(|| 0)).expect("a token"),
        ),
        connect_timeout: Duration::from_secs(1),
        request_timeout,
    })
    .expect("client builds")
}

pub fn guest(email: &str) -> Guest {
    Guest {
        first_name: Some("Jane".to_owned()),
        last_name: Some("Doe".to_owned()),
        ..Guest::new(email)
    }
}

impl TestEnv {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub fn guests_url(&self) -> String {
        self.url(&format!("/organizations/{ORG}/guests"))
    }

    /// A POST with every header Tallyfy requires except those named in `omit`.
    pub async fn raw_create(&self, body: &Value, omit: &[&str]) -> (u16, Value) {
        let mut request = self.http.post(self.guests_url()).body(body.to_string());
        for (name, value) in [
            ("authorization", format!("Bearer {TOKEN}")),
            ("accept", "application/json".to_owned()),
            ("x-tallyfy-client", "APIClient".to_owned()),
            ("content-type", "application/json".to_owned()),
        ] {
            if !omit.contains(&name) {
                request = request.header(name, value);
            }
        }
        send(request).await
    }

    pub async fn raw_get(&self, path: &str) -> (u16, Value) {
        let request = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .header("accept", "application/json")
            .header("x-tallyfy-client", "APIClient");
        send(request).await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let request = self
            .http
            .request(method, self.url(&format!("/_sandbox{path}")))
            .json(&body);
        send(request).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("sandbox answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A loopback port that nothing listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A one-shot server that answers every connection with this raw HTTP response.
pub async fn canned_server(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    format!("http://{addr}")
}
