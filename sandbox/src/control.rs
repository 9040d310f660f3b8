//! The `/_sandbox` control API (no auth, JSON): inspect guests and stats, change faults and
//! token, queue 429 bursts, expire issued tokens, reset. Never subject to injected faults.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::Faults;
use super::server::{Resp, bad_request, json_response, not_found, read_json};
use super::state::Shared;

#[derive(Deserialize)]
struct Burst {
    count: u32,
    #[serde(default = "default_retry_after")]
    retry_after_secs: u64,
}

fn default_retry_after() -> u64 {
    1
}

/// `{"fail_with": 503}` starts an outage of the token endpoint, `{"fail_with": null}` ends it.
#[derive(Deserialize)]
struct TokenEndpoint {
    fail_with: Option<u16>,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

pub(crate) async fn handle(req: Request<Incoming>, path: &str, shared: &Shared) -> Resp {
    let method = req.method().clone();
    match (&method, path.trim_end_matches('/')) {
        (&Method::GET, "/guests") => {
            let guests = shared.lock().guests();
            json_response(
                StatusCode::OK,
                &json!({"total": guests.len(), "data": guests}),
            )
        }
        (&Method::GET, "/stats") => ok(&shared.lock().stats),
        (&Method::GET, "/faults") => ok(&shared.lock().faults),
        (&Method::PUT, "/faults") => match parse::<Faults>(req).await {
            Ok(faults) => match check_faults(&faults) {
                Ok(()) => {
                    shared.lock().faults = faults.clone();
                    ok(&faults)
                }
                Err(message) => bad_request(message),
            },
            Err(resp) => resp,
        },
        (&Method::POST, "/burst429") => match parse::<Burst>(req).await {
            Ok(burst) => {
                shared.lock().set_burst(burst.count, burst.retry_after_secs);
                ok(&json!({"count": burst.count, "retry_after_secs": burst.retry_after_secs}))
            }
            Err(resp) => resp,
        },
        (&Method::PUT, "/token") => match parse::<Token>(req).await {
            Ok(Token { token }) => {
                shared.lock().token = token;
                ok(&json!({"ok": true}))
            }
            Err(resp) => resp,
        },
        // Issued access tokens stop working now; `revoke_refresh` refuses refresh tokens too.
        (&Method::POST, "/tokens/expire") => {
            shared.lock().tokens.expire_all();
            ok(&json!({"ok": true}))
        }
        (&Method::POST, "/tokens/revoke_refresh") => {
            shared.lock().tokens.revoke_refresh();
            ok(&json!({"ok": true}))
        }
        (&Method::PUT, "/token_endpoint") => match parse::<TokenEndpoint>(req).await {
            Ok(TokenEndpoint { fail_with }) => {
                shared.lock().tokens.fail_with = fail_with;
                ok(&json!({"fail_with": fail_with}))
            }
            Err(resp) => resp,
        },
        (&Method::POST, "/reset") => {
            shared.reset();
            ok(&json!({"ok": true}))
        }
        _ => not_found(),
    }
}

/// Rates outside [0, 1] are almost certainly percentages typed by mistake.
pub(crate) fn check_faults(faults: &Faults) -> Result<(), &'static str> {
    let rates = [
        faults.error_rate,
        faults.timeout_rate,
        faults.drop_after_create_rate,
    ];
    if rates.iter().all(|r| (0.0..=1.0).contains(r)) {
        Ok(())
    } else {
        Err("Fault rates must be between 0 and 1.")
    }
}

async fn parse<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Resp> {
    let value: Value = read_json(req).await?;
    serde_json::from_value(value).map_err(|e| bad_request(&format!("Invalid body: {e}")))
}

fn ok(body: &impl serde::Serialize) -> Resp {
    match serde_json::to_value(body) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(_) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": true})),
    }
}
