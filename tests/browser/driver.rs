//! Chromium under `chromedriver`: the driver as a child process (its whole process group killed
//! on drop, so no browser outlives a failed test) and headless sessions opened on it.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// `chromedriver` on PATH, or `None` (the caller skips) unless `REQUIRE_BROWSER_TESTS=1`.
pub fn find_chromedriver() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromedriver"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("REQUIRE_BROWSER_TESTS").as_deref() != Ok("1"),
            "REQUIRE_BROWSER_TESTS=1 but chromedriver is not on PATH (scripts/install-chromium.sh)"
        );
        eprintln!(
            "NOTICE: chromedriver not found; browser tests skipped (scripts/install-chromium.sh)"
        );
    }
    found
}

/// A running `chromedriver`, in its own process group with the browsers it starts.
pub struct Chromedriver {
    child: Child,
    pub url: String,
}

impl Chromedriver {
    pub async fn start(binary: &std::path::Path) -> Chromedriver {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        driver.wait_until_ready().await;
        driver
    }

    /// Polls the driver's `/status` until it is ready, for at most 20 s.
    async fn wait_until_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/status", self.url)).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver was not ready in 20 s");
    }

    /// A new headless Chromium session, 1280x900, JavaScript on or off.
    pub async fn session(&self, javascript: bool) -> Client {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
            ],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session starts")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group's id is the driver's pid (`process_group(0)`); Chromium inherits it.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (the kernel's pick for port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
