//! Hostile or mistaken input on `POST /webhooks/contacts`: addresses Tallyfy refuses,
//! internationalised domains, unbounded lists, repeated keys, control characters and bodies
//! that are not plain UTF-8 (the CRM sources' side is `sources/hostile.rs`).

mod canonical;
mod slow_senders;

use reqwest::header::HeaderMap;

use crate::helpers::SIGNING_SECRET;

/// A POST of raw `body` bytes (which may be anything but UTF-8) with `headers`.
pub async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    client
        .post(url)
        .headers(map)
        .body(body.to_vec())
        .send()
        .await
        .expect("request sent")
}

/// Standard Webhooks headers signing `body` exactly as given, bytes and all (by hand: the
/// reference crate signs only UTF-8).
pub fn signed_headers(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let timestamp = chrono::Utc::now().timestamp();
    let key = b64
        .decode(SIGNING_SECRET.trim_start_matches("whsec_"))
        .expect("secret");
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let signature = format!("v1,{}", b64.encode(hmac_sha256::HMAC::mac(message, key)));
    vec![
        ("content-type", "application/json".into()),
        ("webhook-id", id.into()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

/// The start of a gzip stream: what a sender that compresses its body sends.
pub const GZIP: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00";
/// `{"email":"rene@example.com","first_name":"René"}` in Latin-1.
pub const LATIN1: &[u8] = b"{\"email\":\"rene@example.com\",\"first_name\":\"Ren\xe9\"}";
