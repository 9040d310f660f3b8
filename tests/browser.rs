//! The operator console in a real browser: headless Chromium over WebDriver (`chromedriver`)
//! against the real bridge binary and its built-in sandbox. Without chromedriver this prints a
//! notice and passes, unless `REQUIRE_BROWSER_TESTS=1` (CI sets it; scripts/install-chromium.sh
//! installs Chromium and the driver).

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/process.rs"]
mod process;

#[path = "browser/bridge.rs"]
mod bridge;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/pages.rs"]
mod pages;

use bridge::{ADMIN_TOKEN, Bridge};
use driver::{Chromedriver, find_chromedriver};
use pages::{click, count, goto, log_in, path, reload_until, text, wait_for};

/// Where the overview's screenshot goes once the whole flow up to it has passed: the test's
/// scratch directory, or the README's picture with `UPDATE_SCREENSHOT=1` (so a test run leaves
/// the work tree as it was).
fn screenshot_path() -> std::path::PathBuf {
    if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/console.png").into()
    } else {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png")
    }
}

/// A page that rewrites its own text when scripts run: what it reads says whether they did.
const SCRIPT_PROBE: &str = "data:text/html,<p id='probe'>off</p>\
    <script>document.getElementById('probe').textContent='on'</script>";

#[tokio::test]
async fn chromium_reads_the_bridges_status_page() {
    let Some(binary) = find_chromedriver() else {
        return;
    };
    // Arrange: a bridge with one failed row, and a browser.
    let bridge = Bridge::start();
    bridge.fail_one_row("status-page@example.com").await;
    let driver = Chromedriver::start(&binary).await;
    let browser = driver.session(true).await;

    // Act: Chromium opens /status, which it shows as text.
    goto(&browser, &format!("{}/status", bridge.base)).await;
    let shown = text(&browser, "body").await;
    let screenshot = browser.screenshot().await.expect("screenshot");
    browser.close().await.expect("session closes");

    // Assert: the JSON as the bridge sent it, and a real PNG of the window.
    let status: serde_json::Value = serde_json::from_str(&shown).expect("the page is JSON");
    assert_eq!(status["outbox"]["counts"]["failed"], 1, "{status}");
    assert_eq!(status["outbox"]["counts"]["delivered"], 0, "{status}");
    assert!(screenshot.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

#[tokio::test]
async fn a_session_with_javascript_off_runs_no_script() {
    let Some(binary) = find_chromedriver() else {
        return;
    };
    let driver = Chromedriver::start(&binary).await;
    for (javascript, want) in [(true, "on"), (false, "off")] {
        let browser = driver.session(javascript).await;
        goto(&browser, SCRIPT_PROBE).await;
        let shown = text(&browser, "#probe").await;
        browser.close().await.expect("session closes");
        assert_eq!(shown, want, "javascript {javascript}");
    }
}

#[tokio::test]
async fn an_operator_retries_a_failed_delivery_in_the_console() {
    let Some(binary) = find_chromedriver() else {
        return;
    };
    // Arrange: one delivery the sandbox refused for good, the fault then cleared.
    let bridge = Bridge::start();
    let email = "console-retry@example.com";
    let id = bridge.fail_one_row(email).await;
    let driver = Chromedriver::start(&binary).await;
    let browser = driver.session(true).await;
    let base = &bridge.base;

    // A wrong token is refused: the login page again, with an error.
    log_in(&browser, base, "not-the-admin-token-at-all").await;
    wait_for(&browser, "#error").await;
    wait_for(&browser, "form#login").await;
    assert_eq!(path(&browser).await, "/console/login");

    // The right token opens the overview, which counts the failed row.
    log_in(&browser, base, ADMIN_TOKEN).await;
    wait_for(&browser, "section#overview").await;
    assert_eq!(path(&browser).await, "/console");
    assert_eq!(count(&browser, "failed").await, 1);
    assert_eq!(count(&browser, "delivered").await, 0);
    wait_for(&browser, "svg#chart").await;

    // The failed list holds exactly that row; its page offers a retry.
    click(&browser, "#nav-failed").await;
    wait_for(&browser, "table#deliveries").await;
    let rows = browser
        .find_all(fantoccini::Locator::Css("#deliveries tr[data-id]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "one failed row listed");
    assert_eq!(
        rows[0].attr("data-id").await.expect("attr"),
        Some(id.to_string())
    );
    assert_eq!(
        rows[0].attr("data-state").await.expect("attr").as_deref(),
        Some("failed")
    );
    rows[0]
        .find(fantoccini::Locator::Css("a.row-link"))
        .await
        .expect("the row's link")
        .click()
        .await
        .expect("row opens");
    assert_eq!(text(&browser, "#state").await, "failed");
    assert_eq!(path(&browser).await, format!("/console/deliveries/{id}"));
    wait_for(&browser, "table#attempts").await;

    // Act: retry it.
    click(&browser, "#retry-submit").await;
    wait_for(&browser, "#flash").await;
    assert_eq!(path(&browser).await, format!("/console/deliveries/{id}"));

    // Assert: delivered, and the sandbox holds exactly one guest for the email.
    reload_until(&browser, "#state", "delivered").await;
    assert_eq!(bridge.guests(email).await, (1, 1), "one guest, for {email}");
    click(&browser, "#nav-overview").await;
    wait_for(&browser, "section#overview").await;
    assert_eq!(count(&browser, "delivered").await, 1);
    assert_eq!(count(&browser, "failed").await, 0);
    let screenshot = browser.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_path(), screenshot).expect("screenshot written");

    // Logging out ends the session: /console goes back to the login page.
    click(&browser, "#logout-submit").await;
    wait_for(&browser, "form#login").await;
    assert_eq!(path(&browser).await, "/console/login");
    goto(&browser, &format!("{base}/console")).await;
    wait_for(&browser, "form#login").await;
    assert_eq!(path(&browser).await, "/console/login");
    browser.close().await.expect("session closes");
}

#[tokio::test]
async fn the_console_works_with_javascript_off() {
    let Some(binary) = find_chromedriver() else {
        return;
    };
    let bridge = Bridge::start();
    let id = bridge.fail_one_row("console-noscript@example.com").await;
    let driver = Chromedriver::start(&binary).await;
    let browser = driver.session(false).await;
    goto(&browser, SCRIPT_PROBE).await;
    assert_eq!(text(&browser, "#probe").await, "off", "scripts are off");

    // Plain forms and links: log in, read the overview, open the failed list.
    log_in(&browser, &bridge.base, ADMIN_TOKEN).await;
    wait_for(&browser, "section#overview").await;
    assert_eq!(path(&browser).await, "/console");
    assert_eq!(count(&browser, "failed").await, 1);
    wait_for(&browser, "svg#chart").await;
    click(&browser, "#nav-failed").await;
    let row = wait_for(&browser, &format!("#deliveries tr[data-id=\"{id}\"]")).await;
    assert_eq!(
        row.attr("data-state").await.expect("attr").as_deref(),
        Some("failed")
    );
    browser.close().await.expect("session closes");
}
