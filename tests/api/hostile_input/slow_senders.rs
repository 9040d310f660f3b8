//! Senders that send headers and then stall their body: each is cut off after
//! `http.body_timeout_ms`, and a flood of them larger than the open-file limit neither exhausts
//! file descriptors nor keeps a healthy client out for long.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::binary::{BINARY, Guard, log_lines, wait_for_port};
use crate::helpers::{SIGNING_SECRET, signed_post, spawn_app_with};

const STALLED_HEAD: &[u8] = b"POST /webhooks/contacts HTTP/1.1\r\nHost: bridge\r\n\
Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408_and_its_connection_closed() {
    let app = spawn_app_with(&[("BRIDGE__HTTP__BODY_TIMEOUT_MS", "200".into())]).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    let answer = tokio::task::spawn_blocking(move || {
        let mut stalled = TcpStream::connect(address).expect("connect");
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stalled.write_all(STALLED_HEAD).expect("head");
        let mut answer = String::new();
        // Read to the end: the bridge answers, then closes the connection.
        let _ = stalled.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("joined");

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(app.outbox_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_bodies_beyond_the_fd_limit_does_not_keep_healthy_clients_out() {
    // Arrange: the binary with 256 file descriptors, and more stalled senders than that.
    let dir = tempfile::tempdir().expect("dir");
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=256:256", "--"])
        .arg(BINARY)
        .env_clear()
        .env("BRIDGE__HTTP__PORT", "0")
        .env("BRIDGE__HTTP__WORKERS", "2")
        .env("BRIDGE__HTTP__BODY_TIMEOUT_MS", "1000")
        .envs(crate::helpers::database_env(
            &dir.path().join("bridge.sqlite"),
        ))
        .env("BRIDGE__LOG__FORMAT", "json")
        .env("BRIDGE__DELIVERY__ENABLED", "false")
        .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().map(Guard).expect("starts");
    let lines = log_lines(&mut child.0);
    let mut logs = Vec::new();
    let port = wait_for_port(&lines, &mut logs);

    // Act: 300 connections send headers and stall; then a healthy client posts a contact.
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream.write_all(STALLED_HEAD).expect("head");
            stream
        })
        .collect();
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/webhooks/contacts");
    let body = json!({"email": "healthy@example.com"}).to_string();
    let response = signed_post(&client, &url, "evt-healthy", &body)
        .send()
        .await;

    // Assert: served (within a few body timeouts, not the minutes the stall would take), and
    // the process never ran out of file descriptors.
    let response = response.expect("the healthy client is served");
    assert_eq!(response.status().as_u16(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let live = client
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);
    drop(flood);
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        logs.push(line);
    }
    let all = logs.join("\n");
    assert!(!all.contains("Too many open files"), "{all}");
}
