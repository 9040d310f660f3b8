//! Logging in to the console: the admin token entered once (login CSRF by double-submit cookie),
//! then a `bridge_session` cookie naming a stored session (its SHA-256 kept, never the id) with
//! a synchronizer CSRF token that every POST form carries; logout deletes it.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use secrecy::ExposeSecret;

use super::layout::{forbidden, html, internal, page, see_other};
use super::{ConsoleState, StoredSession, form};
use crate::http_auth::secrets_match;
use crate::time::now_ms;

/// The session cookie.
pub const COOKIE: &str = "bridge_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_COOKIE: &str = "bridge_login_csrf";

/// The logged-in admin's session.
pub(super) struct Session {
    id_hash: [u8; 32],
    /// Goes into every POST form's hidden `csrf` field.
    pub csrf: String,
}

/// 256 random bits, URL-safe.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .context("Failed to draw random bytes for a console session")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(id: &str) -> [u8; 32] {
    hmac_sha256::Hash::hash(id.as_bytes())
}

/// Came over https, directly or through a proxy that says so.
fn over_https(request: &HttpRequest) -> bool {
    request.connection_info().scheme() == "https"
        || request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn cookie<'c>(
    request: &HttpRequest,
    name: &'c str,
    value: String,
    path: &'c str,
    max_age_secs: i64,
) -> Cookie<'c> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_https(request))
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// The session the request's cookie names, or the answer to send instead: 303 to the login page
/// when there is none (unknown, expired or logged out).
pub(super) async fn current(
    request: &HttpRequest,
    state: &ConsoleState,
) -> Result<Session, HttpResponse> {
    let Some(cookie) = request.cookie(COOKIE) else {
        return Err(see_other("/console/login"));
    };
    let id_hash = hash(cookie.value());
    match state.store.session(&id_hash, now_ms()).await {
        Ok(Some(stored)) => Ok(Session {
            id_hash,
            csrf: stored.csrf,
        }),
        Ok(None) => Err(see_other("/console/login")),
        Err(error) => Err(internal(error)),
    }
}

/// The session, and the form it posted once its `csrf` field is the session's (403 otherwise).
pub(super) async fn posted(
    request: &HttpRequest,
    state: &ConsoleState,
    body: &[u8],
) -> Result<(Session, form::Pairs), HttpResponse> {
    let session = current(request, state).await?;
    let pairs = form::parse(body).unwrap_or_default();
    let presented = form::field(&pairs, "csrf").unwrap_or("");
    if presented.is_empty() || !secrets_match(presented.as_bytes(), session.csrf.as_bytes()) {
        return Err(forbidden(Some(&session)));
    }
    Ok((session, pairs))
}

/// The login page with a fresh login-CSRF token (as a cookie and a hidden field).
fn login_form(request: &HttpRequest, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let token = match random_token() {
        Ok(token) => token,
        Err(error) => return internal(error),
    };
    let markup = page(
        "Log in",
        None,
        html! {
            @if let Some(error) = error {
                p id="error" { (error) }
            }
            form id="login" method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                button id="login-submit" type="submit" { "Log in" }
            }
        },
    );
    let mut response = html(status, markup);
    // Short-lived: only the next login needs it.
    let login = cookie(request, LOGIN_COOKIE, token, "/console/login", 3600);
    if let Err(error) = response.add_cookie(&login) {
        return internal(anyhow::anyhow!("{error}"));
    }
    response
}

#[utoipa::path(
    get,
    path = "/console/login",
    tag = "console",
    responses(
        (status = 200, description = "The login form", body = String, content_type = "text/html"),
        (status = 404, description = "No admin token is configured"),
    )
)]
pub(super) async fn login_page(request: HttpRequest) -> HttpResponse {
    login_form(&request, StatusCode::OK, None)
}

#[utoipa::path(
    post,
    path = "/console/login",
    tag = "console",
    request_body(content = super::form::schema::LoginForm, description = "`token` and the login form's `csrf`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the session cookie is set, on to /console"),
        (status = 401, description = "Wrong token: the login page again, with #error", body = String, content_type = "text/html"),
        (status = 403, description = "The login form's CSRF token is missing or wrong", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn login(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    let Some(expected) = &state.admin_token else {
        return super::layout::not_found_page(None);
    };
    let pairs = form::parse(&body).unwrap_or_default();
    let presented = form::field(&pairs, "csrf").unwrap_or("");
    let cookie_token = request.cookie(LOGIN_COOKIE);
    let csrf_ok = cookie_token.is_some_and(|c| {
        !presented.is_empty() && secrets_match(presented.as_bytes(), c.value().as_bytes())
    });
    if !csrf_ok {
        return forbidden(None);
    }
    let token = form::field(&pairs, "token").unwrap_or("");
    if token.is_empty() || !secrets_match(token.as_bytes(), expected.expose_secret().as_bytes()) {
        tracing::warn!("Console login refused: wrong admin token");
        return login_form(
            &request,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    match start_session(&request, &state).await {
        Ok(response) => response,
        Err(error) => internal(error),
    }
}

async fn start_session(
    request: &HttpRequest,
    state: &ConsoleState,
) -> anyhow::Result<HttpResponse> {
    let id = random_token()?;
    let now = now_ms();
    let secs = i64::try_from(state.session_secs).unwrap_or(i64::MAX / 1000);
    let stored = StoredSession {
        id_hash: hash(&id).to_vec(),
        csrf: random_token()?,
        created_at: now,
        expires_at: now.saturating_add(secs.saturating_mul(1000)),
    };
    state.store.create_session(&stored, now).await?;
    tracing::info!("Console login");
    let mut response = see_other("/console");
    response
        .add_cookie(&cookie(request, COOKIE, id, "/console", secs))
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    response
        .add_cookie(&cookie(
            request,
            LOGIN_COOKIE,
            String::new(),
            "/console/login",
            0,
        ))
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/console/logout",
    tag = "console",
    request_body(content = super::form::schema::CsrfForm, description = "The session's `csrf`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged out (the session is deleted), on to /console/login"),
        (status = 403, description = "The form's CSRF token is missing or wrong", body = String, content_type = "text/html"),
    )
)]
pub(super) async fn logout(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ConsoleState>,
) -> HttpResponse {
    let (session, _) = match posted(&request, &state, &body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    if let Err(error) = state.store.delete_session(&session.id_hash).await {
        return internal(error);
    }
    tracing::info!("Console logout");
    let mut response = see_other("/console/login");
    let cleared = cookie(&request, COOKIE, String::new(), "/console", 0);
    if let Err(error) = response.add_cookie(&cleared) {
        return internal(anyhow::anyhow!("{error}"));
    }
    response
}
