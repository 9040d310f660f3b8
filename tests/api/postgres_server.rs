//! A PostgreSQL server of a test's own, for the tests that stop and start it (the suite's shared
//! server must stay up for every other test): a cluster in a temp directory, made with the
//! server binaries `scripts/with-postgres.sh` found (`PG_BIN`, or Debian's
//! `/usr/lib/postgresql/*/bin`).

use std::path::PathBuf;
use std::process::Command;

pub struct OwnServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Root cannot run PostgreSQL: the cluster then belongs to Debian's `postgres` user.
    as_postgres: bool,
}

fn server_bin() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

impl OwnServer {
    /// A new cluster, started; `None` (after a notice) where no server binaries are installed,
    /// unless `REQUIRE_POSTGRES_TESTS=1`.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_bin() else {
            assert!(
                std::env::var("REQUIRE_POSTGRES_TESTS").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES_TESTS=1 but no PostgreSQL server binaries were found"
            );
            eprintln!("notice: no PostgreSQL server binaries; test skipped");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("bridge-own-pg")
            .tempdir()
            .expect("temp dir");
        let as_postgres = rustix::process::geteuid().is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let server = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-U", "bridge", "--auth=trust", "-E", "UTF8"],
        );
        server.start_again();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A server tool, run as the cluster's owner.
    fn command(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(tool);
            command
        } else {
            Command::new(tool)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `postgres://bridge@127.0.0.1:PORT` (no database).
    pub fn url(&self) -> String {
        format!("postgres://bridge@127.0.0.1:{}", self.port)
    }

    /// Stops the server at once (`-m fast`: sessions are cut, as a crash or failover would).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts it again on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}
