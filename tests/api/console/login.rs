//! Logging in and out: the admin token once, then a strict HttpOnly session cookie whose session
//! lives in the database (so it survives a restart and ends server-side at logout or expiry);
//! no token configured, no console.

use reqwest::header::COOKIE;

use super::{
    Console, client, console_app, cookie_value, location, post_login, set_cookie, with_form,
};
use crate::admin::TOKEN;
use crate::helpers::spawn_app;

async fn sessions(app: &crate::helpers::TestApp) -> Vec<(Vec<u8>, i64, i64)> {
    let db = app.db().await;
    let rows = sqlx::query_as("SELECT id_hash, created_at, expires_at FROM console_sessions")
        .fetch_all(&db)
        .await
        .expect("sessions");
    db.close().await;
    rows
}

#[tokio::test]
async fn the_right_token_logs_in_with_a_strict_http_only_cookie_naming_a_stored_session() {
    let app = console_app().await;
    let response = post_login(&app, &client(), TOKEN).await;

    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response).as_deref(), Some("/console"));
    let cookie = set_cookie(response.headers(), "bridge_session").expect("session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let id = cookie_value(&cookie);
    assert!(id.len() >= 43, "256 random bits: {id}");
    // Stored as its SHA-256 only, expiring after console_session_secs.
    let stored = sessions(&app).await;
    assert_eq!(stored.len(), 1);
    let (hash, created, expires) = &stored[0];
    assert_eq!(
        hash.as_slice(),
        hmac_sha256::Hash::hash(id.as_bytes()).as_slice()
    );
    assert_eq!(expires - created, 28_800_000);
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_the_session_length_is_configurable() {
    let app = crate::helpers::spawn_app_with(&[
        ("BRIDGE__ADMIN__TOKEN", TOKEN.into()),
        ("BRIDGE__ADMIN__CONSOLE_SESSION_SECS", "600".into()),
    ])
    .await;
    let client = client();
    let (csrf, login_cookie) = super::login_form(&app, &client).await;
    let request = client
        .post(format!("{}/console/login", app.address))
        .header(COOKIE, format!("bridge_login_csrf={login_cookie}"))
        .header("x-forwarded-proto", "https");
    let response = with_form(request, &[("token", TOKEN), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 303);
    let cookie = set_cookie(response.headers(), "bridge_session").expect("cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_token_is_401_with_the_login_page_and_no_session() {
    let app = console_app().await;
    for token in ["admin-token-for-tests-not", "", "admin-token-for-test"] {
        let response = post_login(&app, &client(), token).await;
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
        assert_eq!(set_cookie(response.headers(), "bridge_session"), None);
        let html = response.text().await.expect("html");
        assert!(html.contains("id=\"error\""), "{html}");
        assert!(html.contains("id=\"login\""), "{html}");
        assert!(!html.contains(TOKEN));
    }
    assert!(sessions(&app).await.is_empty());
}

#[tokio::test]
async fn a_login_without_its_csrf_pair_is_refused() {
    let app = console_app().await;
    let client = client();
    let (csrf, cookie) = super::login_form(&app, &client).await;
    let url = format!("{}/console/login", app.address);
    // No cookie; a cookie that is not the form's; no field.
    for (cookie, field) in [
        (None, csrf.clone()),
        (Some("forged".to_owned()), csrf.clone()),
        (Some(cookie.clone()), String::new()),
    ] {
        let mut request = with_form(
            client.post(&url),
            &[("token", TOKEN), ("csrf", field.as_str())],
        );
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("bridge_login_csrf={cookie}"));
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(set_cookie(response.headers(), "bridge_session"), None);
    }
    assert!(sessions(&app).await.is_empty());
}

#[tokio::test]
async fn without_a_valid_session_every_page_redirects_to_the_login() {
    let app = console_app().await;
    let client = client();
    for cookie in [None, Some("bridge_session=made-up")] {
        for path in [
            "/console",
            "/console/deliveries?state=failed",
            "/console/deliveries/1",
            "/console/search?email=a@example.com",
            "/console/refused",
            "/console/bulk?action=retry&state=failed",
        ] {
            let mut request = client.get(format!("{}{path}", app.address));
            if let Some(cookie) = cookie {
                request = request.header(COOKIE, cookie);
            }
            let response = request.send().await.expect("sent");
            assert_eq!(response.status().as_u16(), 303, "{path}");
            assert_eq!(location(&response).as_deref(), Some("/console/login"));
        }
        let mut request = client.post(format!("{}/console/deliveries/1/retry", app.address));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = with_form(request, &[("csrf", "x")])
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 303);
    }
}

#[tokio::test]
async fn an_expired_session_redirects_and_expired_rows_are_deleted_at_the_next_login() {
    let app = console_app().await;
    let console = Console::login(&app).await;
    let db = app.db().await;
    // Expire it by its stored time, as the clock would.
    sqlx::query("UPDATE console_sessions SET expires_at = $1")
        .bind(chrono::Utc::now().timestamp_millis() - 1)
        .execute(&db)
        .await
        .expect("expired");

    let response = console.get("/console").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response).as_deref(), Some("/console/login"));

    let _again = Console::login(&app).await;
    assert_eq!(sessions(&app).await.len(), 1, "the expired row is gone");
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = console_app().await;
    let console = Console::login(&app).await;

    // Without the form's token nothing happens.
    let refused = console.post("/console/logout", &[]).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(console.page("/console").await.0, 200);

    let response = console.submit("/console/logout", &[]).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response).as_deref(), Some("/console/login"));
    let cleared = set_cookie(response.headers(), "bridge_session").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(sessions(&app).await.is_empty());
    // The old cookie, replayed, no longer works.
    let response = console.get("/console").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response).as_deref(), Some("/console/login"));
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let app = console_app().await;
    let mut console = Console::login(&app).await;
    let app = app.restart().await;
    console.address = app.address.clone();
    assert_eq!(console.page("/console").await.0, 200);
}

#[tokio::test]
async fn without_an_admin_token_every_console_path_is_404() {
    let app = spawn_app().await;
    let client = client();
    for path in [
        "/console",
        "/console/login",
        "/console/static/console.css",
        "/console/deliveries",
        "/console/nope",
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    let request = client.post(format!("{}/console/login", app.address));
    let response = with_form(request, &[("token", "anything-at-all-16"), ("csrf", "x")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(set_cookie(response.headers(), "bridge_session"), None);
}

#[tokio::test]
async fn every_console_response_forbids_caching_framing_and_scripts() {
    let app = console_app().await;
    let console = Console::login(&app).await;
    let anonymous = client();
    let mut responses = vec![
        anonymous
            .get(format!("{}/console/login", app.address))
            .send()
            .await
            .expect("sent"),
        anonymous
            .get(format!("{}/console", app.address))
            .send()
            .await
            .expect("sent"),
    ];
    for path in [
        "/console",
        "/console/static/console.css",
        "/console/deliveries/999",
        "/console/missing",
        "/console/deliveries?state=nope",
    ] {
        responses.push(console.get(path).await);
    }
    for response in responses {
        let headers = response.headers();
        let url = response.url().to_string();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("cache-control"), "no-store", "{url}");
        assert_eq!(
            header("content-security-policy"),
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "{url}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{url}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{url}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{url}");
    }
    let css = console.get("/console/static/console.css").await;
    assert_eq!(css.status().as_u16(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/css"))
    );
}
