//! The ops console as a browser without JavaScript drives it: real HTTP on loopback, cookies
//! carried by hand, forms posted with their hidden CSRF field, redirects looked at, not followed.

mod actions;
mod login;
mod pages;

use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use sqlx::AnyPool;

use crate::admin::TOKEN;
use crate::helpers::TestApp;

/// An app with the admin token (so the console) and no delivery.
pub async fn console_app() -> TestApp {
    crate::admin::admin_app().await
}

/// `request` with `fields` as its `application/x-www-form-urlencoded` body, as a browser posts
/// a form.
pub fn with_form(
    request: reqwest::RequestBuilder,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, NON_ALPHANUMERIC),
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            )
        })
        .collect();
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
}

/// An HTTP client that follows no redirect, so a test sees each 303.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `Set-Cookie` header setting `name`, whole.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value a `Set-Cookie` header gives its cookie.
pub fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or("");
    pair.split_once('=')
        .map(|(_, v)| v)
        .unwrap_or("")
        .to_owned()
}

/// The `value` of the first hidden `csrf` input of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Where a redirect points.
pub fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A logged-in console session.
pub struct Console {
    pub address: String,
    pub client: reqwest::Client,
    /// The `bridge_session` cookie's value.
    pub session: String,
    /// The session's CSRF token, as its pages' forms carry it.
    pub csrf: String,
}

/// The login page's form token and its double-submit cookie.
pub async fn login_form(app: &TestApp, client: &reqwest::Client) -> (String, String) {
    let response = client
        .get(format!("{}/console/login", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let cookie = set_cookie(response.headers(), "bridge_login_csrf").expect("login csrf cookie");
    let html = response.text().await.expect("html");
    let csrf = csrf_of(&html).expect("login form csrf");
    (csrf, cookie_value(&cookie))
}

/// Posts the login form with `token`.
pub async fn post_login(app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
    let (csrf, cookie) = login_form(app, client).await;
    let request = client
        .post(format!("{}/console/login", app.address))
        .header(COOKIE, format!("bridge_login_csrf={cookie}"));
    with_form(request, &[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent")
}

impl Console {
    /// Logs in with the admin token.
    pub async fn login(app: &TestApp) -> Console {
        let client = client();
        let response = post_login(app, &client, TOKEN).await;
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(location(&response).as_deref(), Some("/console"));
        let session =
            cookie_value(&set_cookie(response.headers(), "bridge_session").expect("cookie"));
        let mut console = Console {
            address: app.address.clone(),
            client,
            session,
            csrf: String::new(),
        };
        let (status, html) = console.page("/console").await;
        assert_eq!(status, 200, "{html}");
        console.csrf = csrf_of(&html).expect("the logout form's csrf");
        console
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .header(COOKIE, format!("bridge_session={}", self.session))
            .send()
            .await
            .expect("sent")
    }

    /// GET: status and HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.expect("html"))
    }

    /// POSTs `fields` as a form (the caller adds `csrf` or not).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let request = self
            .client
            .post(format!("{}{path}", self.address))
            .header(COOKIE, format!("bridge_session={}", self.session));
        with_form(request, fields).send().await.expect("sent")
    }

    /// POSTs `fields` with this session's CSRF token.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// A row's state, straight from the file.
pub async fn state_of(db: &AnyPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("row")
}

/// Audit rows: (action, target, affected, principal), oldest first.
pub async fn audit_rows(db: &AnyPool) -> Vec<(String, Option<String>, i64, String)> {
    sqlx::query_as("SELECT action, target, affected, principal FROM admin_audit ORDER BY id")
        .fetch_all(db)
        .await
        .expect("audit")
}
