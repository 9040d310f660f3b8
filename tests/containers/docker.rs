//! The Docker engine as the tests see it: whether one answers (else skip or, with
//! REQUIRE_CONTAINER_TESTS=1, fail), the `docker` CLI with a time limit, and names that never
//! collide between runs.

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Engine {
    /// DOCKER_HOST as the user had it, for CLI calls (testcontainers may be given the shim).
    user_docker_host: Option<String>,
}

/// The engine, with images ready, or `None` after printing why the test is skipped.
pub fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE.get_or_init(detect).as_ref()
}

fn detect() -> Option<Engine> {
    let required = std::env::var("REQUIRE_CONTAINER_TESTS").is_ok_and(|v| v == "1");
    let user_docker_host = std::env::var("DOCKER_HOST").ok();
    let probe = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .stdin(Stdio::null())
        .output();
    let api_version = match probe {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => format!("cannot run docker: {e}"),
            };
            assert!(
                !required,
                "REQUIRE_CONTAINER_TESTS=1 but no Docker engine answers: {why}"
            );
            notice(&format!(
                "NOTICE: container tests skipped, no Docker engine answers ({why}). \
                 Set REQUIRE_CONTAINER_TESTS=1 to make this a failure."
            ));
            return None;
        }
    };
    let engine = Engine { user_docker_host };
    point_testcontainers_at_engine(&engine, &api_version);
    crate::images::ensure(&engine);
    Some(engine)
}

/// testcontainers asks for a newer API than old engines accept; put the shim between them when
/// the engine is the local Unix socket (a remote DOCKER_HOST is left alone).
fn point_testcontainers_at_engine(engine: &Engine, api_version: &str) {
    let minor: u32 = api_version
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Docker API version {api_version:?}"));
    let socket = match engine.user_docker_host.as_deref() {
        None => "/var/run/docker.sock".to_owned(),
        Some(host) => match host.strip_prefix("unix://") {
            Some(path) => path.to_owned(),
            None => return,
        },
    };
    let shim = crate::api_shim::start(socket.into(), minor);
    notice(&format!(
        "container tests: Docker API {api_version}; testcontainers goes through {shim}"
    ));
    // SAFETY: runs once, inside the OnceLock initialiser, before any testcontainers call
    // reads DOCKER_HOST; nothing in this process reads the environment from C code meanwhile.
    unsafe { std::env::set_var("DOCKER_HOST", shim) };
}

impl Engine {
    /// `program args…` with the user's DOCKER_HOST, killed after `limit`; panics on failure.
    pub fn run(&self, program: &str, args: &[&str], limit: Duration) -> String {
        let out = self.try_run(program, args, limit);
        assert!(
            out.status.success(),
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn try_run(&self, program: &str, args: &[&str], limit: Duration) -> Output {
        let mut command = self.command(program);
        command.args(args);
        run_with_limit(command, limit)
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        match &self.user_docker_host {
            Some(host) => command.env("DOCKER_HOST", host),
            None => command.env_remove("DOCKER_HOST"),
        };
        command.stdin(Stdio::null());
        command
    }

    pub fn docker(&self, args: &[&str]) -> String {
        self.run("docker", args, Duration::from_secs(60))
    }

    /// `docker inspect` of one field, e.g. `{{.State.Health.Status}}`.
    pub fn inspect(&self, container: &str, format: &str) -> String {
        self.docker(&["inspect", "--format", format, container])
    }
}

pub fn run_with_limit(mut command: Command, limit: Duration) -> Output {
    let description = format!("{command:?}");
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{description}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{description} did not finish within {limit:?}");
        }
    }
}

/// Writes to stderr past the test harness's capture, so the line shows in a plain `cargo test`.
pub fn notice(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A name unique to this process and moment, for networks, volumes and compose projects.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn poll<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
