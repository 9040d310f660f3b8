//! The fake OAuth token endpoint (`POST /oauth/token`, also under `/api`): form-encoded grants
//! checked against the sandbox config, random short-lived tokens, and the store of those issued.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use super::config::SandboxConfig;
use super::server::{BODY_LIMIT, Resp, json_response};
use super::state::{Shared, State};

const TOKEN_CHARS: usize = 40;

/// Tokens issued, and the credentials to issue them for.
pub(crate) struct Tokens {
    client_id: String,
    client_secret: String,
    username: String,
    password: String,
    ttl: Duration,
    expires_in: u64,
    /// Access tokens and when each stops working.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
    /// An outage of the token endpoint: every request answered with this status.
    pub fail_with: Option<u16>,
    /// Not the fault dice: issuing a token must not change a seeded fault sequence.
    rng: fastrand::Rng,
}

impl Tokens {
    pub fn new(config: &SandboxConfig) -> Self {
        Self {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            ttl: Duration::from_secs(config.token_ttl_secs),
            expires_in: config.expires_in.unwrap_or(config.token_ttl_secs),
            access: HashMap::new(),
            refresh: HashSet::new(),
            fail_with: None,
            rng: fastrand::Rng::new(),
        }
    }

    pub fn valid(&self, token: &str, now: Instant) -> bool {
        self.access.get(token).is_some_and(|until| now < *until)
    }

    pub fn expire_all(&mut self) {
        self.access.clear();
    }

    pub fn revoke_refresh(&mut self) {
        self.refresh.clear();
    }

    fn random(&mut self, prefix: &str) -> String {
        let rng = &mut self.rng;
        let tail: String = std::iter::repeat_with(|| rng.alphanumeric())
            .take(TOKEN_CHARS)
            .collect();
        format!("{prefix}{tail}")
    }

    fn issue(&mut self, with_refresh: bool, now: Instant) -> Value {
        let access = self.random("sbx_at_");
        self.access.insert(access.clone(), now + self.ttl);
        let mut answer = json!({
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "access_token": access,
        });
        if with_refresh {
            let refresh = self.random("sbx_rt_");
            self.refresh.insert(refresh.clone());
            answer["refresh_token"] = Value::String(refresh);
        }
        answer
    }

    /// The endpoint's answer to one request's form fields.
    fn answer(&mut self, form: &HashMap<String, String>, now: Instant) -> Result<Value, Refusal> {
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
        if field("client_id") != self.client_id || field("client_secret") != self.client_secret {
            return Err(Refusal::InvalidClient);
        }
        match field("grant_type") {
            "client_credentials" => Ok(self.issue(false, now)),
            "password"
                if field("username") == self.username && field("password") == self.password =>
            {
                Ok(self.issue(true, now))
            }
            "password" => Err(Refusal::InvalidGrant(
                "The user credentials were incorrect.",
            )),
            // Rotated: a refresh token works once.
            "refresh_token" if self.refresh.remove(field("refresh_token")) => {
                Ok(self.issue(true, now))
            }
            "refresh_token" => Err(Refusal::InvalidGrant("The refresh token is invalid.")),
            _ => Err(Refusal::UnsupportedGrant),
        }
    }
}

enum Refusal {
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrant,
}

impl Refusal {
    /// Laravel Passport's shapes.
    fn response(&self) -> Resp {
        let (status, error, message) = match self {
            Self::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            ),
            Self::InvalidGrant(message) => (StatusCode::BAD_REQUEST, "invalid_grant", *message),
            Self::UnsupportedGrant => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ),
        };
        json_response(
            status,
            &json!({"error": error, "error_description": message, "message": message}),
        )
    }
}

/// `/oauth/token` or `/api/oauth/token` (Tallyfy's docs write both).
pub(crate) fn is_token_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == "/oauth/token" || path == "/api/oauth/token"
}

fn invalid_request(message: &str) -> Resp {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": message, "message": message}),
    )
}

pub(crate) async fn handle(req: Request<Incoming>, shared: &Shared) -> Resp {
    let form_encoded = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return invalid_request("The body must be application/x-www-form-urlencoded.");
    }
    let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return invalid_request("The request body could not be read or is too large."),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut state = shared.lock();
    respond(&mut state, &form, Instant::now())
}

fn respond(state: &mut State, form: &HashMap<String, String>, now: Instant) -> Resp {
    let given = form.get("grant_type").map_or("", String::as_str);
    let known = ["client_credentials", "password", "refresh_token"].contains(&given);
    let grant = if known { given } else { "unsupported" };
    *state
        .stats
        .token_requests
        .entry(grant.to_owned())
        .or_default() += 1;
    if let Some(status) = state.tokens.fail_with {
        state.stats.token_refusals += 1;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return json_response(
            status,
            &json!({"error": "server_error", "message": "Injected token endpoint failure"}),
        );
    }
    match state.tokens.answer(form, now) {
        Ok(answer) => {
            state.stats.tokens_issued += 1;
            json_response(StatusCode::OK, &answer)
        }
        Err(refusal) => {
            state.stats.token_refusals += 1;
            refusal.response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CLIENT: [(&str, &str); 2] = [
        ("client_id", "sandbox-client"),
        ("client_secret", "sandbox-client-secret"),
    ];

    fn with_client(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut all = CLIENT.to_vec();
        all.extend_from_slice(pairs);
        form(&all)
    }

    #[test]
    fn client_credentials_issue_a_token_the_guest_api_accepts_until_it_expires() {
        let config = SandboxConfig {
            token_ttl_secs: 60,
            ..SandboxConfig::default()
        };
        let mut tokens = Tokens::new(&config);
        let t0 = Instant::now();
        let answer = tokens
            .answer(&with_client(&[("grant_type", "client_credentials")]), t0)
            .ok()
            .expect("issued");
        let token = answer["access_token"].as_str().expect("token").to_owned();
        assert_eq!(answer["expires_in"], 60);
        assert!(answer.get("refresh_token").is_none());
        assert!(tokens.valid(&token, t0));
        assert!(!tokens.valid(&token, t0 + Duration::from_secs(60)));
        assert!(!tokens.valid("sbx_at_guess", t0));
        tokens.expire_all();
        assert!(!tokens.valid(&token, t0));
    }

    #[test]
    fn password_grant_gives_a_refresh_token_that_works_once() {
        let mut tokens = Tokens::new(&SandboxConfig::default());
        let now = Instant::now();
        let user = [
            ("grant_type", "password"),
            ("username", "bridge@example.com"),
            ("password", "sandbox-password"),
        ];
        let first = tokens
            .answer(&with_client(&user), now)
            .ok()
            .expect("issued");
        let refresh = first["refresh_token"].as_str().expect("refresh").to_owned();
        let again = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
        assert!(tokens.answer(&with_client(&again), now).is_ok());
        assert!(matches!(
            tokens.answer(&with_client(&again), now),
            Err(Refusal::InvalidGrant(_))
        ));
        let wrong = [
            ("grant_type", "password"),
            ("username", "bridge@example.com"),
            ("password", "x"),
        ];
        assert!(matches!(
            tokens.answer(&with_client(&wrong), now),
            Err(Refusal::InvalidGrant(_))
        ));
    }

    #[test]
    fn a_wrong_client_or_grant_is_refused_and_counted() {
        let mut state = State::for_tests(&SandboxConfig::default());
        let now = Instant::now();
        let wrong = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox-client"),
            ("client_secret", "nope"),
        ]);
        assert_eq!(
            respond(&mut state, &wrong, now).status(),
            StatusCode::UNAUTHORIZED
        );
        let odd = with_client(&[("grant_type", "implicit")]);
        assert_eq!(
            respond(&mut state, &odd, now).status(),
            StatusCode::BAD_REQUEST
        );
        let good = with_client(&[("grant_type", "client_credentials")]);
        assert_eq!(respond(&mut state, &good, now).status(), StatusCode::OK);
        state.tokens.fail_with = Some(503);
        let down = respond(&mut state, &good, now).status();
        assert_eq!(down, StatusCode::SERVICE_UNAVAILABLE);
        state.tokens.fail_with = None;
        assert_eq!(state.stats.token_requests["client_credentials"], 3);
        assert_eq!(state.stats.token_requests["unsupported"], 1);
        assert_eq!(
            (state.stats.tokens_issued, state.stats.token_refusals),
            (1, 3)
        );
        assert!(state.accepts("sandbox-token", now));
    }

    #[test]
    fn only_the_two_documented_paths_are_the_token_endpoint() {
        assert!(is_token_path("/oauth/token"));
        assert!(is_token_path("/api/oauth/token/"));
        assert!(!is_token_path("/oauth/tokens"));
    }
}
