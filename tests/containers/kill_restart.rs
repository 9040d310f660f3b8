//! The bridge container is SIGKILLed (`docker kill`) while deliveries to a slow sandbox are in
//! flight, then started again on the same volume. Every accepted event must still be known,
//! every email must be exactly one guest, the healthcheck must report healthy and the process
//! must not run as root.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use testcontainers::core::{ExecCommand, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::docker::{Engine, engine, notice, poll, unique};
use crate::http::{SIGNING_SECRET, client, guests, outbox_counts, post_signed};
use crate::images::{BRIDGE_IMAGE, SANDBOX_IMAGE};

const EMAILS: usize = 120;
const EVENTS: usize = 160;
const LIMIT: Duration = Duration::from_secs(120);

/// Removes what the containers leave behind, even when the test fails.
struct Leftovers<'a> {
    engine: &'a Engine,
    network: String,
    volume: String,
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        let _ = self
            .engine
            .try_run("docker", &["network", "rm", &self.network], LIMIT);
        let _ = self
            .engine
            .try_run("docker", &["volume", "rm", "-f", &self.volume], LIMIT);
    }
}

fn image(reference: &str) -> GenericImage {
    let (name, tag) = reference.split_once(':').expect("name:tag");
    GenericImage::new(name, tag)
}

async fn base_url(container: &ContainerAsync<GenericImage>, port: u16) -> String {
    let host_port = container
        .get_host_port_ipv4(port.tcp())
        .await
        .expect("mapped port");
    format!("http://127.0.0.1:{host_port}")
}

/// Event `n`: the first EMAILS events are one per email (spelled with varying case); later
/// ones are new events for earlier emails.
fn event(n: usize) -> (String, String, String) {
    let index = n % EMAILS;
    let email = format!("Person{index}@Example.com");
    let body = json!({"email": if n.is_multiple_of(3) { email.to_uppercase() } else { email.clone() },
                      "first_name": "Kill"});
    (format!("evt_{n}"), body.to_string(), email.to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bridge_loses_nothing_and_creates_each_guest_once() {
    let Some(engine) = engine() else { return };
    let leftovers = Leftovers {
        engine,
        network: unique("tb-net"),
        volume: unique("tb-data"),
    };
    let sandbox_name = unique("tb-sandbox");
    let sandbox = image(SANDBOX_IMAGE)
        .with_exposed_port(8081.tcp())
        .with_wait_for(WaitFor::healthcheck())
        .with_network(&leftovers.network)
        .with_container_name(&sandbox_name)
        .with_startup_timeout(LIMIT)
        .start()
        .await
        .expect("sandbox starts and turns healthy");
    let sandbox_url = base_url(&sandbox, 8081).await;
    let http = client();
    let faults = http
        .put(format!("{sandbox_url}/_sandbox/faults"))
        .json(&json!({"latency_ms": 400}))
        .send()
        .await
        .expect("faults set");
    assert!(faults.status().is_success());

    let bridge = image(BRIDGE_IMAGE)
        .with_exposed_port(8080.tcp())
        .with_wait_for(WaitFor::healthcheck())
        .with_network(&leftovers.network)
        .with_mount(Mount::volume_mount(&leftovers.volume, "/data"))
        .with_env_var(
            "BRIDGE__TALLYFY__BASE_URL",
            format!("http://{sandbox_name}:8081"),
        )
        .with_env_var("BRIDGE__TALLYFY__ORG_ID", "demo-org")
        .with_env_var("BRIDGE__TALLYFY__TOKEN", "sandbox-token")
        .with_env_var("BRIDGE__TALLYFY__REQUEST_TIMEOUT_MS", "2000")
        .with_env_var("BRIDGE__INGEST__AUTH__SIGNING_SECRET", SIGNING_SECRET)
        .with_env_var("BRIDGE__DELIVERY__CONCURRENCY", "4")
        .with_env_var("BRIDGE__DELIVERY__LEASE_SECS", "10")
        .with_env_var("BRIDGE__DELIVERY__RETRY_BASE_MS", "200")
        .with_env_var("BRIDGE__DELIVERY__RETRY_CAP_MS", "2000")
        // Over a hundred guests in seconds, from a sandbox without an hourly cap: pacing's
        // default 30 per hour would hold most of them (pacing has its own tests).
        .with_env_var("BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR", "0")
        .with_startup_timeout(LIMIT)
        .start()
        .await
        .expect("bridge starts and turns healthy");
    assert_eq!(
        engine.inspect(bridge.id(), "{{.State.Health.Status}}"),
        "healthy"
    );
    assert_not_root(&bridge).await;

    // Phase 1: the CRM sends most events; the sandbox answers each guest call after 400 ms.
    let mut accepted: BTreeMap<String, String> = BTreeMap::new(); // event id -> normalised email
    let mut refused = Vec::new();
    let mut url = base_url(&bridge, 8080).await;
    for n in 0..EVENTS * 2 / 3 {
        let (id, body, email) = event(n);
        match post_signed(&http, &url, &id, &body).await {
            Some(202) => {
                accepted.insert(id, email);
            }
            other => panic!("event {id} before the kill: {other:?}"),
        }
    }
    let at_kill = poll("deliveries in flight", LIMIT, async || {
        let counts = outbox_counts(&http, &url).await?;
        let created = guests(&http, &sandbox_url).await?.len();
        (counts["in_flight"] > 0 && created >= 10).then_some((counts, created))
    })
    .await;

    engine.docker(&["kill", bridge.id()]);
    assert_eq!(engine.inspect(bridge.id(), "{{.State.Running}}"), "false");
    let (id, body, _) = event(EVENTS * 2 / 3);
    if post_signed(&http, &url, &id, &body).await.is_none() {
        refused.push(EVENTS * 2 / 3); // the CRM keeps it and retries later
    }

    bridge.start().await.expect("bridge restarts");
    // testcontainers does not wait for the healthcheck again after a restart; poll it.
    poll(
        "the restarted bridge's healthcheck to pass",
        LIMIT,
        async || {
            let health = engine.inspect(bridge.id(), "{{.State.Health.Status}}");
            assert_ne!(health, "unhealthy", "restarted bridge is unhealthy");
            (health == "healthy").then_some(())
        },
    )
    .await;
    url = base_url(&bridge, 8080).await;

    // Every event acknowledged before the kill is still known: the CRM's retry is a duplicate.
    for n in 0..EVENTS * 2 / 3 {
        let (id, body, _) = event(n);
        assert_eq!(
            post_signed(&http, &url, &id, &body).await,
            Some(200),
            "{id} was lost"
        );
    }
    // Phase 2: what was refused during the outage, then the rest.
    let rest: Vec<usize> = refused
        .iter()
        .copied()
        .chain(EVENTS * 2 / 3 + 1..EVENTS)
        .collect();
    for n in rest {
        let (id, body, email) = event(n);
        assert_eq!(
            post_signed(&http, &url, &id, &body).await,
            Some(202),
            "event {id}"
        );
        accepted.insert(id, email);
    }

    let final_counts = poll("every accepted event delivered", LIMIT, async || {
        let counts = outbox_counts(&http, &url).await?;
        let waiting = counts["queued"] + counts["in_flight"] + counts["retrying"];
        (waiting == 0).then_some(counts)
    })
    .await;
    let guests = guests(&http, &sandbox_url).await.expect("guests");
    let emails: BTreeSet<String> = accepted.values().cloned().collect();
    let stats = crate::http::get_json(&http, &format!("{sandbox_url}/_sandbox/stats"))
        .await
        .expect("stats");
    notice(&format!(
        "kill/restart: {} events accepted over {} emails; at the kill {} rows in flight, {} \
         delivered, {} guests created; after restart: outbox {final_counts:?}, {} guests, \
         creates {}, duplicate create attempts {}, requests {}",
        accepted.len(),
        emails.len(),
        at_kill.0["in_flight"],
        at_kill.0["delivered"],
        at_kill.1,
        guests.len(),
        stats["creates"],
        stats["duplicate_create_attempts"],
        stats["requests"],
    ));
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
    drop((bridge, sandbox));
}

/// PID 1 of the container (the bridge itself) has no root uid, real or effective.
async fn assert_not_root(container: &ContainerAsync<GenericImage>) {
    let mut exec = container
        .exec(ExecCommand::new(["cat", "/proc/1/status"]))
        .await
        .expect("exec");
    let status = String::from_utf8(exec.stdout_to_vec().await.expect("stdout")).unwrap();
    let uids: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line")
        .split_whitespace()
        .collect();
    assert!(
        uids.iter().all(|uid| *uid != "0"),
        "runs as root: Uid {uids:?}"
    );
    notice(&format!(
        "bridge process uids (real, effective, saved, fs): {uids:?}"
    ));
}
