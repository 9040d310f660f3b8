//! Starting the real `tallyfy-bridge` binary as a child process and reading its JSON logs; shared
//! by the API tests (`binary.rs` and others) and the browser test (tests/browser.rs), which
//! includes this file by path.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_tallyfy-bridge");

pub fn bridge(db: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("BRIDGE__HTTP__PORT", "0")
        .env("BRIDGE__DATABASE__PATH", db)
        .env("BRIDGE__LOG__FORMAT", "json")
        .env("BRIDGE__DELIVERY__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A child bridge that is killed if its test fails before stopping it, so none outlives it.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Log lines as they come; the child's stdout is read on a thread.
pub fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn wait_for_port(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> u16 {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the bridge logs its port");
        seen.push(line.clone());
        if let Ok(event) = serde_json::from_str::<Value>(&line)
            && event["message"] == "Listening"
        {
            return event["port"].as_u64().expect("port") as u16;
        }
    }
}

/// Starts the bridge and waits for its port: the child, its log stream, the lines read so far.
pub fn start(mut command: Command) -> (Guard, mpsc::Receiver<String>, Vec<String>, u16) {
    let mut child = command.spawn().map(Guard).expect("starts");
    let lines = log_lines(&mut child.0);
    let mut logs = Vec::new();
    let port = wait_for_port(&lines, &mut logs);
    (child, lines, logs, port)
}
/// The URL `serve --sandbox` logs for its built-in sandbox.
pub fn sandbox_url(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the sandbox address is logged");
        seen.push(line.clone());
        if let Some(url) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|event| event["sandbox"].as_str().map(str::to_owned))
        {
            return url;
        }
    }
}

/// Polls the sandbox of a bridge process (its own clock: nothing to drive) until it holds
/// `count` guests, for at most 10 s.
pub async fn wait_for_guests(client: &reqwest::Client, sandbox: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let guests: Value = client
            .get(format!("{sandbox}/_sandbox/guests"))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        if let Some(list) = guests["data"].as_array()
            && list.len() >= count
        {
            return list.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sandbox did not get {count} guests in 10 s");
}
