//! Sandbox settings: which documented Tallyfy behaviour to imitate and which faults to inject.
//! Every field has a default so partial JSON (control API, config files) works.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub org_id: String,
    /// The static token the guest API always accepts (a personal access token).
    pub token: String,
    /// The OAuth client the token endpoint (`POST /oauth/token`) knows.
    pub client_id: String,
    pub client_secret: String,
    /// The user of `grant_type=password`.
    pub username: String,
    pub password: String,
    /// How long an issued access token is accepted.
    pub token_ttl_secs: u64,
    /// The `expires_in` the token endpoint announces; `None`: `token_ttl_secs`. A value above
    /// the real lifetime imitates a token revoked early.
    pub expires_in: Option<u64>,
    pub duplicate_mode: DuplicateMode,
    pub id_style: IdStyle,
    pub faults: Faults,
    /// Seeds the fault dice so a run can be replayed.
    pub seed: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            org_id: "demo-org".to_owned(),
            token: "sandbox-token".to_owned(),
            client_id: "sandbox-client".to_owned(),
            client_secret: "sandbox-client-secret".to_owned(),
            username: "bridge@example.com".to_owned(),
            password: "sandbox-password".to_owned(),
            token_ttl_secs: 3600,
            expires_in: None,
            duplicate_mode: DuplicateMode::Link,
            id_style: IdStyle::Numeric,
            faults: Faults::default(),
            seed: 0,
        }
    }
}

/// What a create for an email that already is a guest does; Tallyfy's docs disagree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateMode {
    /// Current docs: the existing guest is returned (200), nothing is duplicated.
    #[default]
    Link,
    /// Older docs: 422 with `errors.email`.
    Reject422,
}

/// Shape of new guest ids; Tallyfy's docs show both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdStyle {
    /// `4523`, a JSON number (current docs).
    #[default]
    Numeric,
    /// `"guest_code_…"`, a JSON string (older docs).
    Text,
}

/// Injected faults; they apply to the guest API only, never to `/_sandbox`.
/// Rates are probabilities in `[0, 1]`, drawn per request from the seeded RNG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every guest API request before anything else.
    pub latency_ms: u64,
    /// Answer `error_status` without doing anything.
    pub error_rate: f64,
    /// Status of those answers: 500 by default; a 4xx imitates a permanent refusal.
    pub error_status: u16,
    /// Hang for `hang_ms`, then close the connection without a response (nothing done).
    pub timeout_rate: f64,
    pub hang_ms: u64,
    /// Create the guest, then close the connection without a response: the hard case.
    pub drop_after_create_rate: f64,
    /// Successful creates (new or linked) per window before 429 RATE_LIMIT_EXCEEDED.
    pub hourly_cap: Option<u32>,
    /// Length of the cap window; Tallyfy's is an hour, tests shorten it.
    pub cap_window_secs: u64,
    /// Send Retry-After as an HTTP date instead of seconds (both are legal).
    pub retry_after_http_date: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            timeout_rate: 0.0,
            hang_ms: 30_000,
            drop_after_create_rate: 0.0,
            hourly_cap: None,
            cap_window_secs: 3600,
            retry_after_http_date: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_keeps_defaults() {
        let faults: Faults = serde_json::from_str(r#"{"error_rate": 0.1}"#).unwrap();
        assert_eq!(faults.error_rate, 0.1);
        assert_eq!(faults.cap_window_secs, 3600);
        let config: SandboxConfig =
            serde_json::from_str(r#"{"duplicate_mode": "reject422", "id_style": "text"}"#).unwrap();
        assert_eq!(config.duplicate_mode, DuplicateMode::Reject422);
        assert_eq!(config.id_style, IdStyle::Text);
        assert_eq!(config.org_id, "demo-org");
    }
}
