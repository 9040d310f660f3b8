//! Delivery baseline: the same guest creates the bridge's worker sends, from a bare reqwest loop.
//!
//! usage: bench-rawclient URL COUNT CONCURRENCY [PREFIX]
//!
//! URL is the guests collection, e.g. `http://127.0.0.1:8081/organizations/demo-org/guests`.
//! Sends COUNT `POST URL` requests, at most CONCURRENCY in flight, with the headers the bridge
//! sends (`Authorization: Bearer sandbox-token`, `Accept: application/json`,
//! `X-Tallyfy-Client: APIClient`, `Content-Type: application/json`) and the body shape it sends
//! (the contact fields bench/bench.py signs, email normalised, one distinct email per request).
//! Like the bridge it reads every answer's body and parses the guest id out of it.
//! Prints one line: `RAW requests=… ok=… errors=… elapsed_s=… rps=…`; exits 1 on any error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const FIRST: [&str; 10] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "Torvalds",
];
const ZONES: [&str; 5] = [
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Europe/Berlin",
];
const COMPANIES: [&str; 5] = [
    "Acme Widgets Ltd",
    "Globex Corporation",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
];

fn body(n: usize, prefix: &str) -> Value {
    let (first, last, company) = (FIRST[n % 10], LAST[(n / 10) % 10], COMPANIES[n % 5]);
    let email = format!(
        "{}.{}.{prefix}{n}@example-{}.com",
        first.to_lowercase(),
        last.to_lowercase(),
        n % 97
    );
    json!({
        "email": email,
        "first_name": first,
        "last_name": last,
        "company_name": company,
        "phone_1": format!("+1 415 555 {:04}", n % 10000),
        "timezone": ZONES[n % 5],
        "company_url": format!("https://{}.example.com", company.split(' ').next().unwrap_or("x").to_lowercase()),
        "contact_url": format!("https://crm.example.com/contacts/{prefix}-{n}"),
        "opportunity_name": format!("{company} renewal {}", 2026 + n % 3),
    })
}

fn guest_id(bytes: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let id = value.get("data").and_then(|d| d.get("id")).or_else(|| value.get("id"))?;
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench-rawclient URL COUNT CONCURRENCY [PREFIX]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let count: usize = args[2].parse().expect("COUNT must be a number");
    let concurrency: usize = args[3].parse().expect("CONCURRENCY must be a number");
    let prefix = args.get(4).cloned().unwrap_or_else(|| "raw".to_owned());

    // Same client settings as the bridge's Tallyfy client.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("bench-rawclient/0")
        .build()
        .expect("build the HTTP client");
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, url, prefix) = (client.clone(), url.clone(), prefix.clone());
        let (next, errors) = (next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let result = client
                    .post(&url)
                    .header("Authorization", "Bearer sandbox-token")
                    .header("Accept", "application/json")
                    .header("X-Tallyfy-Client", "APIClient")
                    .json(&body(n, &prefix))
                    .send()
                    .await;
                let ok = match result {
                    Ok(response) if response.status().is_success() => {
                        matches!(response.bytes().await, Ok(b) if guest_id(&b).is_some())
                    }
                    Ok(response) => {
                        eprintln!("request {n}: HTTP {}", response.status());
                        false
                    }
                    Err(error) => {
                        eprintln!("request {n}: {error}");
                        false
                    }
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "RAW requests={count} ok={} errors={errors} elapsed_s={elapsed:.3} rps={:.1}",
        count - errors,
        count as f64 / elapsed
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
