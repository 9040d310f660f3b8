//! Schemathesis against the real binary (`serve --sandbox`, every source configured): generated
//! requests to every operation of `/openapi.json` must never get a 5xx, and every answer must
//! match the document (status code, content type, schema; 405 with `Allow` for another method). Without schemathesis this prints a
//! notice and passes, unless `REQUIRE_SCHEMATHESIS=1` (CI sets it; scripts/install-schemathesis.sh
//! installs it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The one bearer token of the run: admin, metrics and the webhook shared secret alike, so the
/// single `Authorization` header schemathesis sends gets past each of them.
const TOKEN: &str = "schemathesis-token-0123456789abcdef";
/// Test cases per operation and phase; the whole run stays well under 3 minutes on 2 cores.
const MAX_EXAMPLES: &str = "80";
/// The seed CI runs with (a run that passed); see `SCHEMATHESIS_SEED` below.
const DEFAULT_SEED: &str = "323365204684565529547789876581985280999";
/// Salesforce's secret URL segment: given to schemathesis so its bodies reach the XML parser.
const SALESFORCE_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// What schemathesis cannot guess from the document: the Salesforce path's real segments.
const CONFIG: &str = r#"
[[operations]]
include-path = "/webhooks/{source}/{token}"
parameters = { "path.source" = "salesforce", "path.token" = "0123456789abcdef0123456789abcdef" }
"#;

/// The venv scripts/install-schemathesis.sh makes, else `st` on the PATH.
fn schemathesis() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    let venv = cache.map(|dir| dir.join("tallyfy-bridge/schemathesis/bin/st"));
    if let Some(st) = venv.filter(|st| st.is_file()) {
        return Some(st);
    }
    let on_path = Command::new("st")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    on_path.is_ok_and(|s| s.success()).then(|| "st".into())
}

/// Kills the bridge when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bridge(dir: &std::path::Path) -> (Guard, u16) {
    // A closed loopback port: nothing here may call a real CRM.
    let nowhere = "http://127.0.0.1:9";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tallyfy-bridge"))
        .args(["serve", "--sandbox", "--sandbox-addr", "127.0.0.1:0"])
        .env_clear()
        .env("BRIDGE__HTTP__PORT", "0")
        .env("BRIDGE__DATABASE__PATH", dir.join("bridge.sqlite"))
        .env("BRIDGE__LOG__FORMAT", "json")
        .env("BRIDGE__LOG__LEVEL", "info")
        .env("BRIDGE__INGEST__AUTH__MODE", "shared_secret")
        .env("BRIDGE__INGEST__AUTH__SHARED_SECRET", TOKEN)
        .env("BRIDGE__ADMIN__TOKEN", TOKEN)
        .env("BRIDGE__METRICS__TOKEN", TOKEN)
        .env("BRIDGE__SOURCES__PIPEDRIVE__USERNAME", "pipedrive")
        .env("BRIDGE__SOURCES__PIPEDRIVE__PASSWORD", TOKEN)
        .env("BRIDGE__SOURCES__PIPEDRIVE__API_BASE_URL", nowhere)
        .env("BRIDGE__SOURCES__HUBSPOT__CLIENT_SECRET", TOKEN)
        .env(
            "BRIDGE__SOURCES__HUBSPOT__WEBHOOK_URL",
            "https://bridge.example.com/webhooks/hubspot",
        )
        .env("BRIDGE__SOURCES__HUBSPOT__API_TOKEN", TOKEN)
        .env("BRIDGE__SOURCES__HUBSPOT__API_BASE_URL", nowhere)
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ORGANIZATION_ID",
            "00D5e000000AbCdEAK",
        )
        .env(
            "BRIDGE__SOURCES__SALESFORCE__ENDPOINT_TOKEN",
            SALESFORCE_TOKEN,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Guard)
        .expect("the bridge starts");
    let stdout = child.0.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end so the bridge never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("the bridge logs its port");
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && event["message"] == "Listening"
            && let Some(port) = event["port"].as_u64()
        {
            return (child, u16::try_from(port).expect("a port"));
        }
    }
}

/// A few stored contacts, so the row ids schemathesis draws (small integers first) exist and
/// the by-id operations get past their 404.
fn seed_contacts(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for n in 1..=5 {
            let response = client
                .post(format!("http://127.0.0.1:{port}/webhooks/contacts"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(format!(r#"{{"email":"seed{n}@example.com"}}"#))
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status().as_u16(), 202, "seed contact {n}");
        }
    });
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "REQUIRE_SCHEMATHESIS=1 but schemathesis is not installed (scripts/install-schemathesis.sh)"
        );
        eprintln!(
            "NOTICE: schemathesis not found; the API was not fuzzed (scripts/install-schemathesis.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(CONFIG.contains(SALESFORCE_TOKEN));
    // schemathesis reads schemathesis.toml from its working directory.
    std::fs::write(dir.path().join("schemathesis.toml"), CONFIG).expect("config written");
    let (_bridge, port) = start_bridge(dir.path());
    seed_contacts(port);
    let started = Instant::now();
    let output = Command::new(&st)
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,unsupported_method,allow_header_conformance",
        ])
        .args(["--max-examples", MAX_EXAMPLES])
        // One fixed seed by default, so that CI is repeatable; `SCHEMATHESIS_SEED=random` draws
        // a new one (printed in the summary), any other value replays that run.
        .args(match std::env::var("SCHEMATHESIS_SEED").as_deref() {
            Ok("random") => vec![],
            Ok(seed) => vec!["--seed".to_owned(), seed.to_owned()],
            Err(_) => vec!["--seed".to_owned(), DEFAULT_SEED.to_owned()],
        })
        .args(["--generation-database", "none"])
        .args(["--generation-with-security-parameters", "false"])
        // One worker: CPython 3.11 can fail parsing in parallel threads (hypothesis describes
        // its filters by parsing their source).
        .args(["--request-timeout", "20", "--workers", "1", "--no-color"])
        // Hypothesis and schemathesis write their caches into the working directory.
        .current_dir(dir.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "schemathesis ran {:.0} s:\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (output above)"
    );
    assert!(
        generated(&stdout) > 0,
        "schemathesis ran no test case (output above)"
    );
}

/// The `N generated` count of the summary's "Test cases:" line (0 when there is none).
fn generated(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|line| line.trim().split_once(" generated"))
        .filter_map(|(count, _)| count.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

#[test]
fn the_generated_count_is_read_whole() {
    assert_eq!(
        generated("Test cases:\n  3160 generated, 3160 passed\n"),
        3160
    );
    assert_eq!(generated("Test cases:\n  0 generated\n"), 0);
    assert_eq!(generated("no summary"), 0);
}
