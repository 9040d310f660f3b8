//! Reading and driving console pages by the ids and names of the console's markup contract:
//! every wait is bounded, element text is trimmed.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator, elements::Element};

/// How long a page may take to show an element.
const WAIT: Duration = Duration::from_secs(10);

/// The element `css` once it is on the page.
pub async fn wait_for(browser: &Client, css: &str) -> Element {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css} on the page: {error}"))
}

pub async fn text(browser: &Client, css: &str) -> String {
    let element = wait_for(browser, css).await;
    element
        .text()
        .await
        .expect("element text")
        .trim()
        .to_owned()
}

pub async fn click(browser: &Client, css: &str) {
    wait_for(browser, css)
        .await
        .click()
        .await
        .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
}

/// The path the browser shows (without the query, which the contract leaves free).
pub async fn path(browser: &Client) -> String {
    let url = browser.current_url().await.expect("current URL");
    url.path().to_owned()
}

pub async fn goto(browser: &Client, url: &str) {
    browser
        .goto(url)
        .await
        .unwrap_or_else(|error| panic!("opening {url}: {error}"));
}

/// Submits `token` on the login page.
pub async fn log_in(browser: &Client, base: &str, token: &str) {
    goto(browser, &format!("{base}/console/login")).await;
    wait_for(browser, "form#login").await;
    let field = wait_for(browser, "#token").await;
    field.clear().await.expect("token field cleared");
    field.send_keys(token).await.expect("token typed");
    click(browser, "#login-submit").await;
}

/// The overview's count for `state` (`data-count`), as a number.
pub async fn count(browser: &Client, state: &str) -> i64 {
    let shown = text(browser, &format!("[data-count=\"{state}\"]")).await;
    shown
        .parse()
        .unwrap_or_else(|_| panic!("the {state} count reads {shown:?}"))
}

/// Reloads the page until `css` reads `want`, for at most 20 s (the bridge delivers on its own
/// clock).
pub async fn reload_until(browser: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = text(browser, css).await;
        if shown == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} still reads {shown:?}, not {want:?}, after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.expect("reload");
    }
}
