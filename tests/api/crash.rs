//! The crash test: the real binary, a faulty sandbox, a CRM that retries, and `kill -9` at random
//! moments. Afterwards every acknowledged event is stored and every email is exactly one guest.
//! On PostgreSQL (the `api_postgres` run) it runs a second time with three bridges sharing the
//! database behind a CRM that sends each retry to the next one, SIGKILLing random replicas while
//! the others keep serving.
//!
//! Scale it up by hand: `CRASH_EVENTS=100000 CRASH_EMAILS=20000 CRASH_KILLS=50
//! cargo test --release --test api crash -- --nocapture` (CRASH_SEED replays a run).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tallyfy_sandbox::{Faults, Sandbox, SandboxConfig};

use crate::binary::BINARY;
use crate::helpers::{SIGNING_SECRET, signed_post};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
struct Event {
    id: String,
    body: String,
}

/// `events` posts over `emails` addresses written with varying case and spaces; about one in
/// ten posts repeats an earlier event id, as a CRM retry does.
fn events(rng: &mut fastrand::Rng, events: usize, emails: usize) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(events);
    for n in 0..events {
        if n > emails && rng.f64() < 0.1 {
            let earlier = out[rng.usize(..out.len())].clone();
            out.push(earlier);
            continue;
        }
        let index = if n < emails { n } else { rng.usize(..emails) };
        let spelled: String = format!("user{index}@example.com")
            .chars()
            .map(|c| {
                if rng.bool() {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let padding = if rng.bool() { " " } else { "" };
        let body = json!({"email": format!("{padding}{spelled}{padding}"), "first_name": "Crash"});
        out.push(Event {
            id: format!("evt_{n}"),
            body: body.to_string(),
        });
    }
    out
}

struct Bridge {
    port: u16,
    db: std::path::PathBuf,
    sandbox_url: String,
    child: Option<Child>,
}

impl Bridge {
    fn start(&mut self) {
        let child = Command::new(BINARY)
            .env_clear()
            .env("BRIDGE__HTTP__PORT", self.port.to_string())
            .envs(crate::helpers::database_env(&self.db))
            .env("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
            .env("BRIDGE__TALLYFY__BASE_URL", &self.sandbox_url)
            .env("BRIDGE__TALLYFY__ORG_ID", "demo-org")
            .env("BRIDGE__TALLYFY__TOKEN", "sandbox-token")
            .env("BRIDGE__TALLYFY__CONNECT_TIMEOUT_MS", "500")
            .env("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "1000")
            .env("BRIDGE__DELIVERY__LEASE_SECS", "7")
            .env("BRIDGE__DELIVERY__CONCURRENCY", "8")
            .env("BRIDGE__DELIVERY__RETRY_BASE_MS", "50")
            .env("BRIDGE__DELIVERY__RETRY_CAP_MS", "1000")
            .env("BRIDGE__DELIVERY__MAX_ATTEMPTS", "10000")
            .env("BRIDGE__DELIVERY__MAX_AGE_SECS", "0")
            .env("BRIDGE__DELIVERY__RATE_LIMIT_DEFAULT_SECS", "1")
            .env("BRIDGE__DELIVERY__IDLE_POLL_MS", "100")
            // Thousands of creates in seconds: pacing has its own tests (delivery::pacing).
            .env("BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR", "0")
            .env("BRIDGE__LOG__LEVEL", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bridge starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL: no shutdown code runs
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Posts like a CRM behind a load balancer: retries every event until it gets a 2xx, whatever
/// happens to the bridges, each retry going to the next of `urls`.
async fn post_until_acknowledged(
    client: &reqwest::Client,
    urls: &[String],
    event: &Event,
) -> (u16, i64) {
    for url in urls.iter().cycle() {
        let sent = signed_post(client, url, &event.id, &event.body)
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            if status == 200 || status == 202 {
                let body: Value = response.json().await.expect("json ack");
                return (status, body["id"].as_i64().expect("id"));
            }
            assert!(status == 503, "unexpected {status} for {}", event.id);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!("cycle never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_random_moments_loses_nothing_and_creates_each_guest_once() {
    crash_test(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_random_replicas_of_three_loses_nothing_and_creates_each_guest_once() {
    if !crate::helpers::on_postgres() {
        return; // one bridge per SQLite file
    }
    crash_test(3).await;
}

/// `replicas` bridges on one database; the killer SIGKILLs one of them at a time, at random.
async fn crash_test(replicas: usize) {
    let (n_events, n_emails, n_kills) = (
        env_or("CRASH_EVENTS", 2000) as usize,
        env_or("CRASH_EMAILS", 600) as usize,
        env_or("CRASH_KILLS", 12),
    );
    let seed = env_or("CRASH_SEED", fastrand::u64(..));
    println!("crash test: seed {seed} (CRASH_SEED={seed} replays the event mix and faults)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let faults = Faults {
        error_rate: 0.10,
        timeout_rate: 0.05,
        hang_ms: 1500,
        drop_after_create_rate: 0.05,
        ..Faults::default()
    };
    let sandbox = Sandbox::start(
        SandboxConfig {
            faults: faults.clone(),
            seed,
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox");
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("crash.sqlite");
    let mut bridges: Vec<Bridge> = (0..replicas)
        .map(|_| Bridge {
            port: free_port(),
            db: db.clone(),
            sandbox_url: sandbox.base_url(),
            child: None,
        })
        .collect();
    for bridge in &mut bridges {
        bridge.start();
    }
    let urls: Vec<String> = bridges
        .iter()
        .map(|b| b.url("/webhooks/contacts"))
        .collect();
    let started = Instant::now();

    // Posters: 8 CRM connections working through the events, retrying through every crash.
    let queue = Arc::new(Mutex::new(
        events(&mut rng, n_events, n_emails)
            .into_iter()
            .collect::<VecDeque<_>>(),
    ));
    let acks: Arc<Mutex<Vec<(String, u16, i64)>>> = Arc::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut posters = tokio::task::JoinSet::new();
    for poster in 0..8 {
        // Each poster starts at another replica.
        let mut urls = urls.clone();
        urls.rotate_left(poster % replicas);
        let (queue, acks, client) = (queue.clone(), acks.clone(), client.clone());
        posters.spawn(async move {
            loop {
                let Some(event) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                let (status, id) = post_until_acknowledged(&client, &urls, &event).await;
                acks.lock().expect("acks").push((event.id, status, id));
            }
        });
    }

    // The killer: SIGKILL a random replica at random moments while events arrive (at least
    // `n_kills` times), a 429 burst now and then, restart it on the same database.
    let mut kills = 0;
    while kills < n_kills || acks.lock().expect("acks").len() < n_events {
        tokio::time::sleep(Duration::from_millis(rng.u64(150..900))).await;
        let bridge = &mut bridges[rng.usize(..replicas)];
        bridge.kill();
        if kills % 3 == 0 {
            sandbox.burst_429(3, 1);
        }
        bridge.start();
        kills += 1;
    }
    while let Some(poster) = posters.join_next().await {
        poster.expect("poster");
    }
    let posted_in = started.elapsed();

    // Drain: wait (bounded) until nothing waits any more.
    let deadline = Instant::now() + Duration::from_secs(120 + n_events as u64 / 20);
    let mut status = Value::Null;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(bridges[0].url("/status")).send().await
            && let Ok(body) = response.json::<Value>().await
        {
            let counts = &body["outbox"]["counts"];
            status = body.clone();
            if counts["queued"] == 0 && counts["retrying"] == 0 && counts["in_flight"] == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for bridge in &mut bridges {
        bridge.stop();
    }

    // Assert.
    let acks = acks.lock().expect("acks").clone();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&crate::helpers::file_database_url(&db))
        .await
        .expect("db");
    let stored: HashMap<String, i64> = sqlx::query_as("SELECT event_id, id FROM outbox")
        .fetch_all(&db)
        .await
        .expect("rows")
        .into_iter()
        .collect();
    let lost = acks
        .iter()
        .filter(|(event, _, id)| stored.get(event) != Some(id))
        .count();
    let by_state: BTreeMap<String, i64> =
        sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state")
            .fetch_all(&db)
            .await
            .expect("states")
            .into_iter()
            .collect();
    let ledger: HashMap<String, String> =
        sqlx::query_as("SELECT email, guest_id FROM guest_ledger")
            .fetch_all(&db)
            .await
            .expect("ledger")
            .into_iter()
            .collect();
    let mismatched_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o LEFT JOIN guest_ledger l ON l.email = o.email
         WHERE o.state = 'delivered' AND o.guest_id IS DISTINCT FROM l.guest_id",
    )
    .fetch_one(&db)
    .await
    .expect("mismatch");
    let guests = sandbox.guests();
    let emails: HashSet<String> = sqlx::query_scalar("SELECT DISTINCT email FROM outbox")
        .fetch_all(&db)
        .await
        .expect("emails")
        .into_iter()
        .collect();
    let duplicates: u32 = guests
        .iter()
        .map(|g| g.creates.saturating_sub(1) + g.duplicate_attempts)
        .sum();
    let ledger_mismatches = guests
        .iter()
        .filter(|g| ledger.get(&g.email) != Some(&g.id))
        .count();
    let stats = sandbox.stats();

    println!(
        "crash test, {replicas} bridge(s): {} events posted ({} acknowledged: {} new, {} repeats) in {:.1?}, {} kills, \
         {} distinct emails, {} guests, creates {}, duplicates {duplicates}, lost {lost}, \
         faults injected {:?}, 429s {}, outbox by state {:?}, total {:.1?}",
        n_events,
        acks.len(),
        acks.iter().filter(|a| a.1 == 202).count(),
        acks.iter().filter(|a| a.1 == 200).count(),
        posted_in,
        kills,
        emails.len(),
        guests.len(),
        stats.creates,
        stats.faults,
        stats.rate_limited,
        by_state,
        started.elapsed(),
    );
    assert_eq!(acks.len(), n_events, "every event was acknowledged");
    assert_eq!(lost, 0, "an acknowledged event is missing from the outbox");
    assert_eq!(duplicates, 0, "a guest was created (or posted) twice");
    assert_eq!(
        guests.len(),
        emails.len(),
        "one guest per distinct email, status: {status}"
    );
    assert_eq!(ledger_mismatches, 0, "ledger ids differ from the sandbox's");
    assert_eq!(
        mismatched_rows, 0,
        "a delivered row's guest id differs from the ledger"
    );
    assert_eq!(by_state.get("in_flight"), None, "stuck in flight");
    assert_eq!(by_state.get("failed"), None, "failed rows");
    assert!(
        stats.faults.values().sum::<u64>() > 0,
        "faults were injected"
    );
}
