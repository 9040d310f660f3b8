//! Pacing within Tallyfy's hourly guest-invite cap: claims bounded by the budget kept in the
//! database (across restarts and workers), spent only by POSTs, emptied by Tallyfy's own cap
//! 429 and not by a burst one, never at the cost of an attempt; and the ETA `/status` shows.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tallyfy_bridge::domain::outcome::{LearnedBy, Outcome};
use tallyfy_sandbox::{Faults, SandboxConfig};

use super::{DeliveryEnv, delivery_env_with};
use crate::helpers::spawn_app_driven;

const HOUR: Duration = Duration::from_secs(3600);
/// How long a spend counts with a window of an hour: the window and its 1 s margin.
const SPAN: Duration = Duration::from_secs(3601);

fn cap(n: u32) -> Vec<(&'static str, String)> {
    vec![("BRIDGE__DELIVERY__MAX_CREATES_PER_HOUR", n.to_string())]
}

async fn paced_env(n: u32, sandbox: SandboxConfig) -> DeliveryEnv {
    delivery_env_with(sandbox, &cap(n)).await
}

impl DeliveryEnv {
    async fn post_many(&self, prefix: &str, n: usize) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                self.post(json!({"email": format!("{prefix}{i}@example.com")}))
                    .await,
            );
        }
        ids
    }

    async fn spends(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM create_spends")
            .fetch_one(&self.db)
            .await
            .expect("spends")
    }

    async fn states(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT state, attempts FROM outbox ORDER BY id")
            .fetch_all(&self.db)
            .await
            .expect("rows")
    }

    async fn pacing(&self) -> Value {
        let status: Value = self.app.get("/status").await.json().await.expect("json");
        status["delivery"]["pacing"].clone()
    }
}

fn delivered(
    outcomes: &[(
        i64,
        Result<Outcome, tallyfy_bridge::domain::outcome::LeaseLost>,
    )],
) -> usize {
    outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Ok(Outcome::Delivered { .. })))
        .count()
}

#[tokio::test]
async fn claims_take_no_more_rows_than_the_budget_and_resume_as_it_frees() {
    let env = paced_env(3, SandboxConfig::default()).await;
    env.post_many("bounded", 7).await;

    // Three units, eight slots: three rows claimed, three POSTs.
    let first = env.worker.run_once().await.expect("run");
    assert_eq!((first.len(), delivered(&first)), (3, 3), "{first:?}");
    assert_eq!(env.posts(), 3);

    // Spent: nothing is claimed, no attempt is counted, nothing fails.
    env.advance(HOUR);
    assert!(env.worker.run_once().await.expect("run").is_empty());
    let waiting: Vec<_> = env
        .states()
        .await
        .into_iter()
        .filter(|(s, _)| s != "delivered")
        .collect();
    assert_eq!(waiting, vec![("queued".to_string(), 0); 4]);

    // The first spends stop counting a span after them: three more.
    env.advance(SPAN - HOUR);
    let second = env.worker.run_once().await.expect("run");
    assert_eq!((second.len(), delivered(&second)), (3, 3), "{second:?}");
    assert_eq!(env.posts(), 6);
    assert_eq!(env.sandbox.stats().rate_limited, 0);
}

#[tokio::test]
async fn the_budget_survives_a_restart() {
    let env = paced_env(2, SandboxConfig::default()).await;
    env.post_many("restart", 3).await;
    assert_eq!(env.drain().await, 2);

    // A new Application on the same file, with the same clock.
    let DeliveryEnv {
        app,
        sandbox,
        clock,
        ..
    } = env;
    let app = app.restart().await;
    let worker = app.worker.clone().expect("delivery is enabled");
    assert!(worker.run_once().await.expect("run").is_empty());
    assert_eq!(sandbox.stats().requests.get("create_guest"), Some(&2));

    clock.advance(SPAN);
    assert_eq!(worker.run_once().await.expect("run").len(), 1);
    assert_eq!(sandbox.stats().requests.get("create_guest"), Some(&3));
}

#[tokio::test]
async fn look_ups_and_ledger_hits_spend_nothing() {
    // The first POST creates the guest and its answer is lost: the retry looks it up.
    let env = paced_env(
        3,
        SandboxConfig {
            faults: Faults {
                drop_after_create_rate: 1.0,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
    )
    .await;
    let first = env.post(json!({"email": "spent-once@example.com"})).await;
    env.drain().await;
    assert_eq!((env.posts(), env.spends().await), (1, 1));
    env.sandbox.set_faults(Faults::default());
    env.advance(Duration::from_secs(60));
    let found = env.worker.run_once().await.expect("run");
    assert!(
        matches!(
            found[0].1,
            Ok(Outcome::Delivered {
                learned_by: LearnedBy::Found,
                ..
            })
        ),
        "{found:?}"
    );
    assert_eq!(env.row(first).await.state, "delivered");

    // Another event of the same email: the ledger answers.
    env.post(json!({"email": "Spent-Once@example.com"})).await;
    let hit = env.worker.run_once().await.expect("run");
    assert!(
        matches!(
            hit[0].1,
            Ok(Outcome::Delivered {
                learned_by: LearnedBy::Ledger,
                ..
            })
        ),
        "{hit:?}"
    );

    assert_eq!(env.lookups(), 1);
    assert_eq!((env.posts(), env.spends().await), (1, 1));
    assert_eq!(env.pacing().await["budget_left"], 2);
}

#[tokio::test]
async fn tallyfys_hourly_cap_429_empties_the_budget_until_retry_after() {
    // Tallyfy allows one create in its window; the bridge thinks it has thirty.
    let env = paced_env(
        30,
        SandboxConfig {
            faults: Faults {
                hourly_cap: Some(1),
                cap_window_secs: 3600,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
    )
    .await;
    let first = env.post(json!({"email": "capped0@example.com"})).await;
    assert_eq!(env.drain().await, 1);
    let capped = env.post(json!({"email": "capped1@example.com"})).await;

    let outcomes = env.worker.run_once().await.expect("run");
    let Ok(Outcome::Paced {
        until,
        by_tallyfy: true,
        ..
    }) = outcomes[0].1
    else {
        panic!("{outcomes:?}");
    };
    let now = env.clock_now();
    // The sandbox's window opened a moment ago: Retry-After is about an hour.
    assert!(
        (3_590_000..=3_600_000).contains(&(until - now)),
        "{}",
        until - now
    );
    let row = env.row(capped).await;
    assert_eq!((row.state.as_str(), row.attempts), ("retrying", 0));

    // The budget is empty for every row, including one due now.
    let fresh = env.post(json!({"email": "capped2@example.com"})).await;
    assert_eq!(env.pacing().await["budget_left"], 0);
    env.advance(Duration::from_secs(1800));
    assert!(env.worker.run_once().await.expect("run").is_empty());
    assert_eq!(env.posts(), 2);

    // Tallyfy's window has ended: both go.
    env.sandbox.set_faults(Faults::default());
    env.advance(Duration::from_millis((until - env.clock_now()) as u64));
    assert_eq!(env.drain().await, 2);
    for id in [first, capped, fresh] {
        let row = env.row(id).await;
        assert_eq!(
            (row.state.as_str(), row.attempts),
            ("delivered", 1),
            "row {id}"
        );
    }
    assert_eq!(env.posts(), 4);
}

#[tokio::test]
async fn a_burst_429_holds_delivery_and_leaves_the_budget_alone() {
    let env = paced_env(5, SandboxConfig::default()).await;
    let id = env.post(json!({"email": "burst@example.com"})).await;
    env.sandbox.burst_429(1, 30);

    let outcomes = env.worker.run_once().await.expect("run");
    assert!(
        matches!(outcomes[0].1, Ok(Outcome::RateLimited { .. })),
        "{outcomes:?}"
    );
    let exhausted: Option<i64> =
        sqlx::query_scalar("SELECT exhausted_until FROM create_budget WHERE id = 1")
            .fetch_one(&env.db)
            .await
            .expect("budget");
    assert_eq!(exhausted, None);
    // The POST that got the 429 spent its unit; the rest is there.
    assert_eq!(env.pacing().await["budget_left"], 4);

    env.advance(Duration::from_secs(31));
    assert_eq!(env.drain().await, 1);
    let row = env.row(id).await;
    assert_eq!((row.state.as_str(), row.attempts), ("delivered", 1));
}

#[tokio::test]
async fn two_workers_on_one_database_never_exceed_the_budget_together_nor_spend_attempts() {
    let env = paced_env(4, SandboxConfig::default()).await;
    // A second replica: its own Application and worker on the same file and clock.
    let mut settings =
        super::delivering_to(&env.sandbox, "demo-org".into(), "sandbox-token".into());
    settings.extend(cap(4));
    settings.push(("BRIDGE__DELIVERY__CONCURRENCY", "8".into()));
    settings.extend(env.app.same_database());
    let other = spawn_app_driven(&settings, Arc::new(env.clock.clone())).await;
    let other_worker = other.worker.clone().expect("delivery is enabled");
    env.post_many("pair", 12).await;

    for _ in 0..3 {
        // Both read a full budget and claim four each; only four may POST.
        let (a, b) = tokio::join!(env.worker.run_once(), other_worker.run_once());
        let outcomes: Vec<_> = a.expect("run").into_iter().chain(b.expect("run")).collect();
        for (_, outcome) in &outcomes {
            assert!(
                matches!(
                    outcome,
                    Ok(Outcome::Delivered { .. }
                        | Outcome::Paced {
                            by_tallyfy: false,
                            ..
                        })
                ),
                "{outcome:?}"
            );
        }
    }
    assert_eq!(env.posts(), 4);
    assert_eq!(env.sandbox.stats().creates, 4);
    // Rows sent back by the spend have their attempt given back.
    for (state, attempts) in env.states().await {
        match state.as_str() {
            "delivered" => assert_eq!(attempts, 1),
            "queued" | "retrying" => assert_eq!(attempts, 0),
            other => panic!("row {other} with {attempts} attempts"),
        }
    }

    env.advance(SPAN);
    let (a, b) = tokio::join!(env.worker.run_once(), other_worker.run_once());
    let outcomes: Vec<_> = a.expect("run").into_iter().chain(b.expect("run")).collect();
    assert_eq!(delivered(&outcomes), 4, "{outcomes:?}");
    assert_eq!(env.posts(), 8);
}

#[tokio::test]
async fn status_shows_412_waiting_at_30_an_hour_as_13_spans() {
    let env = paced_env(30, SandboxConfig::default()).await;
    env.post_many("eta", 412).await;

    let pacing = env.pacing().await;
    assert_eq!(pacing["max_creates_per_hour"], 30);
    assert_eq!(pacing["window_secs"], 3600);
    assert_eq!(pacing["budget_left"], 30);
    assert_eq!(pacing["waiting"], 412);
    // 30 go now, then 30 each span: the 412th starts 13 spans from now (412/30 h = 13.7 h on
    // average; the budget on hand is what makes it 13).
    let eta = pacing["drain_eta_secs"].as_f64().expect("eta");
    assert!((eta - 13.0 * 3601.0).abs() < 2.0, "{eta}");
    assert!(
        pacing["drain_eta_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{pacing}"
    );

    let metrics = env.app.get("/metrics").await.text().await.expect("text");
    for line in [
        "tallyfy_bridge_delivery_create_budget_left 30.0",
        "tallyfy_bridge_delivery_create_budget_limit 30.0",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(
        metrics.contains("tallyfy_bridge_delivery_drain_eta_seconds 46813.0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn status_counts_the_wait_for_spent_units() {
    let env = paced_env(5, SandboxConfig::default()).await;
    env.post_many("spent", 12).await;
    assert_eq!(env.drain().await, 5);
    let spent_at = env.clock_now();

    let pacing = env.pacing().await;
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        (pacing["budget_left"].as_i64(), pacing["waiting"].as_i64()),
        (Some(0), Some(7))
    );
    // The next create when the first spend stops counting; the 7th waiting row one span later.
    let next =
        chrono::DateTime::parse_from_rfc3339(pacing["next_create_at"].as_str().expect("next"))
            .expect("time")
            .timestamp_millis();
    assert!((next - (spent_at + 3_601_000)).abs() < 1000, "{pacing}");
    let eta = pacing["drain_eta_secs"].as_f64().expect("eta");
    let expected = (spent_at + 2 * 3_601_000 - now) as f64 / 1000.0;
    assert!((eta - expected).abs() < 2.0, "{eta} vs {expected}");
}

#[tokio::test]
async fn zero_means_no_limit() {
    let env = paced_env(0, SandboxConfig::default()).await;
    env.post_many("unlimited", 40).await;
    assert_eq!(env.drain().await, 40);
    assert_eq!((env.posts(), env.spends().await), (40, 0));
    let pacing = env.pacing().await;
    assert_eq!(pacing["max_creates_per_hour"], 0, "{pacing}");
    assert!(
        pacing["budget_left"].is_null() && pacing["drain_eta_secs"].is_null(),
        "{pacing}"
    );
}

#[tokio::test]
async fn a_worker_that_dies_after_its_spend_wastes_the_unit_and_sends_nothing_unbudgeted() {
    let env = paced_env(2, SandboxConfig::default()).await;
    let limit = env.app.settings.delivery.pacing();
    let orphan = env.post(json!({"email": "died@example.com"})).await;
    // A worker claims the row and spends for its POST, then dies before sending it.
    let now = env.clock_now();
    let claimed = env
        .store
        .claim_due(env.org(), now, 1, now + 90_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        env.store
            .spend_create(now, limit, orphan)
            .await
            .expect("spend"),
        None
    );

    // Its lease ends: the row is tried again, looked up (404), spends the last unit, is created.
    env.advance(Duration::from_secs(91));
    let outcomes = env.worker.run_once().await.expect("run");
    assert_eq!(delivered(&outcomes), 1, "{outcomes:?}");
    assert_eq!((env.lookups(), env.posts(), env.spends().await), (1, 1, 2));

    // The unit the dead worker spent stays spent: nothing more goes in this window.
    env.post(json!({"email": "next@example.com"})).await;
    assert!(env.worker.run_once().await.expect("run").is_empty());
    assert_eq!(env.posts(), 1);
}
