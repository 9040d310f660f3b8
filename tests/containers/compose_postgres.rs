//! docker-compose.postgres.yml as shipped: PostgreSQL and two bridge replicas sharing it, behind
//! a CRM that sends each event to either. One replica is SIGKILLed while deliveries to a slow
//! sandbox are in flight, then started again: every accepted event is still known, every email
//! is exactly one guest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use crate::compose::{Project, env_example};
use crate::docker::{engine, notice, poll};
use crate::http::{client, guests, outbox_counts};

const EMAILS: usize = 60;
const EVENTS: usize = 90;
const LIMIT: Duration = Duration::from_secs(180);

/// Posts event `n` (over EMAILS addresses) to `bridge` with the demo's shared secret.
async fn post(http: &reqwest::Client, bridge: &str, n: usize) -> Option<u16> {
    http.post(format!("{bridge}/webhooks/contacts"))
        .bearer_auth(env_example("BRIDGE__INGEST__AUTH__SHARED_SECRET"))
        .json(&json!({"event_id": format!("pg-{n}"), "email": format!("Replica{}@Example.com", n % EMAILS)}))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_lose_nothing_when_one_is_killed() {
    let Some(engine) = engine() else { return };
    let project = Project::new(
        engine,
        "docker-compose.postgres.yml",
        &[
            // Dozens of guests in seconds from a sandbox without an hourly cap (pacing has its
            // own tests), and a lease short enough that the killed replica's rows come back soon.
            "BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR=0",
            "BRIDGE__DELIVERY__CONCURRENCY=4",
            "BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS=2000",
            "BRIDGE__DELIVERY__LEASE_SECS=10",
        ],
    );
    project.run(&["up", "-d", "--no-build"]);
    project.healthy("bridge-1").await;
    project.healthy("bridge-2").await;
    let replicas = [
        project.url("bridge-1", "8080"),
        project.url("bridge-2", "8080"),
    ];
    let sandbox = project.url("sandbox", "8081");
    let http = client();
    let faults = http
        .put(format!("{sandbox}/_sandbox/faults"))
        .json(&json!({"latency_ms": 300}))
        .send()
        .await
        .expect("faults set");
    assert!(faults.status().is_success());

    // Phase 1: two thirds of the events, alternately to each replica.
    let mut accepted: BTreeMap<usize, String> = BTreeMap::new();
    for n in 0..EVENTS * 2 / 3 {
        assert_eq!(
            post(&http, &replicas[n % 2], n).await,
            Some(202),
            "event {n}"
        );
        accepted.insert(n, format!("replica{}@example.com", n % EMAILS));
    }
    let at_kill = poll("deliveries in flight", LIMIT, async || {
        let counts = outbox_counts(&http, &replicas[0]).await?;
        let created = guests(&http, &sandbox).await?.len();
        (counts["in_flight"] > 0 && created >= 5).then_some((counts, created))
    })
    .await;
    project.run(&["kill", "-s", "SIGKILL", "bridge-1"]);

    // Phase 2: the rest to the surviving replica while the other is down, then it comes back.
    for n in EVENTS * 2 / 3..EVENTS {
        assert_eq!(post(&http, &replicas[1], n).await, Some(202), "event {n}");
        accepted.insert(n, format!("replica{}@example.com", n % EMAILS));
    }
    project.run(&["start", "bridge-1"]);
    project.healthy("bridge-1").await;
    let replicas = [project.url("bridge-1", "8080"), replicas[1].clone()];
    // Every event accepted before the kill is known to both: a CRM retry is a duplicate.
    for n in 0..EVENTS * 2 / 3 {
        assert_eq!(
            post(&http, &replicas[(n + 1) % 2], n).await,
            Some(200),
            "event {n} lost"
        );
    }

    let final_counts = poll("every accepted event delivered", LIMIT, async || {
        let counts = outbox_counts(&http, &replicas[1]).await?;
        let waiting = counts["queued"] + counts["in_flight"] + counts["retrying"];
        (waiting == 0).then_some(counts)
    })
    .await;
    let guests = guests(&http, &sandbox).await.expect("guests");
    let emails: BTreeSet<String> = accepted.values().cloned().collect();
    let status = crate::http::get_json(&http, &format!("{}/status", replicas[0]))
        .await
        .expect("status");
    notice(&format!(
        "compose postgres ({}): {} events over {} emails; at the kill {} in flight, {} guests; \
         after: outbox {final_counts:?}, {} guests, replicas seen {}",
        project.program.join(" "),
        accepted.len(),
        emails.len(),
        at_kill.0["in_flight"],
        at_kill.1,
        guests.len(),
        status["database"]["replicas"]
    ));
    assert_eq!(status["database"]["backend"], "postgres");
    assert_eq!(final_counts["failed"], 0);
    assert_eq!(
        final_counts["delivered"],
        accepted.len() as u64,
        "a row per accepted event"
    );
    assert_eq!(guests.keys().cloned().collect::<BTreeSet<_>>(), emails);
    for (email, (creates, _)) in &guests {
        assert_eq!(*creates, 1, "{email} created {creates} times");
    }
}
