//! The compose file itself: `--profile sandbox up` with the shipped `.env.example`, one contact
//! posted with the demo's shared secret and seen delivered, then `down -v`.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::docker::{Engine, engine, notice, poll, unique};
use crate::http::{client, guests};
use crate::images::{BRIDGE_IMAGE, POSTGRES_IMAGE, SANDBOX_IMAGE};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LIMIT: Duration = Duration::from_secs(120);

/// `docker compose` if the CLI has it, else `docker-compose`.
fn compose_program(engine: &Engine) -> Vec<&'static str> {
    let v2 = engine.try_run("docker", &["compose", "version"], LIMIT);
    if v2.status.success() {
        vec!["docker", "compose"]
    } else {
        vec!["docker-compose"]
    }
}

/// A compose project of a shipped compose file, copied with `.env.example` as its `.env` into
/// a directory of its own (`.env` is the operator's file in the repository root and must not be
/// touched), run with the sandbox profile and the local images.
pub(crate) struct Project<'a> {
    engine: &'a Engine,
    pub(crate) program: Vec<&'static str>,
    name: String,
    file: String,
    _dir: tempfile::TempDir,
}

impl<'a> Project<'a> {
    /// `compose_file` (in the repository root) with `.env.example` plus `env_lines` as `.env`.
    pub(crate) fn new(engine: &'a Engine, compose_file: &str, env_lines: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            Path::new(ROOT).join(compose_file),
            dir.path().join(compose_file),
        )
        .expect("copy compose file");
        let mut env =
            std::fs::read_to_string(Path::new(ROOT).join(".env.example")).expect(".env.example");
        for line in env_lines {
            env.push_str(line);
            env.push('\n');
        }
        std::fs::write(dir.path().join(".env"), env).expect("write .env");
        Self {
            engine,
            program: compose_program(engine),
            name: unique("tbcompose").replace('-', ""),
            file: dir.path().join(compose_file).display().to_string(),
            _dir: dir,
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        let mut command = self.engine.command(self.program[0]);
        command
            .args(&self.program[1..])
            .args(["--profile", "sandbox", "-p", &self.name, "-f", &self.file])
            .args(args)
            .envs([
                ("BRIDGE_IMAGE", BRIDGE_IMAGE),
                ("SANDBOX_IMAGE", SANDBOX_IMAGE),
                ("POSTGRES_IMAGE", POSTGRES_IMAGE),
                // Any free host port: other tests or a running demo may hold 8080/8081.
                ("BRIDGE_PORT", "127.0.0.1:0"),
                ("BRIDGE_1_PORT", "127.0.0.1:0"),
                ("BRIDGE_2_PORT", "127.0.0.1:0"),
                ("SANDBOX_PORT", "127.0.0.1:0"),
            ]);
        let out = crate::docker::run_with_limit(command, LIMIT);
        assert!(
            out.status.success(),
            "compose {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub(crate) fn url(&self, service: &str, port: &str) -> String {
        let published = self.run(&["port", service, port]);
        let host_port = published.rsplit(':').next().expect("host:port");
        format!("http://127.0.0.1:{host_port}")
    }
}

impl Project<'_> {
    /// Waits for `service`'s container healthcheck to pass.
    pub(crate) async fn healthy(&self, service: &str) {
        let id = self.run(&["ps", "-q", service]);
        poll(
            &format!("{service}'s healthcheck to pass"),
            LIMIT,
            async || {
                let health = self.engine.inspect(&id, "{{.State.Health.Status}}");
                assert_ne!(health, "unhealthy", "{service} container is unhealthy");
                (health == "healthy").then_some(())
            },
        )
        .await;
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let mut command = self.engine.command(self.program[0]);
        command
            .args(&self.program[1..])
            .args(["--profile", "sandbox", "-p", &self.name, "-f", &self.file])
            .args(["down", "-v", "--remove-orphans", "-t", "5"]);
        let out = crate::docker::run_with_limit(command, LIMIT);
        if !out.status.success() {
            notice(&format!(
                "compose down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}

/// The value of `key` in `.env.example`.
pub(crate) fn env_example(key: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(".env.example")).expect(".env.example");
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} not in .env.example"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_sandbox_profile_delivers_a_contact() {
    let Some(engine) = engine() else { return };
    // The compose file and .env.example as shipped.
    let project = Project::new(engine, "docker-compose.yml", &[]);
    project.run(&["up", "-d", "--no-build"]);

    project.healthy("bridge").await;
    let bridge = project.url("bridge", "8080");
    let sandbox = project.url("sandbox", "8081");

    let http = client();
    let response = http
        .post(format!("{bridge}/webhooks/contacts"))
        .bearer_auth(env_example("BRIDGE__INGEST__AUTH__SHARED_SECRET"))
        .json(&json!({"event_id": "compose-1", "email": "Compose.Demo@Example.com"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 202);
    let guests = poll("the contact to reach the sandbox", LIMIT, async || {
        let guests = guests(&http, &sandbox).await?;
        (!guests.is_empty()).then_some(guests)
    })
    .await;
    assert_eq!(
        guests.keys().collect::<Vec<_>>(),
        ["compose.demo@example.com"],
        "one guest, normalised"
    );
    notice(&format!(
        "compose ({}): contact delivered, sandbox guests {guests:?}",
        project.program.join(" ")
    ));
}
