//! Soak load: webhook requests read from stdin, sent at a fixed rate whatever the answers (open
//! loop), with each request's latency kept in an HDR histogram and reported per window.
//!
//! usage: bench-soakload BASE_URL RATE SECONDS WINDOWS_OUT ACKED_OUT [WINDOW_SECS] [MAX_IN_FLIGHT]
//!
//! Stdin: one request a line, tab-separated: the emails it carries (comma-separated), the path,
//! its headers as `Name: value`, the body last (bench/soak.py writes them just in time, so
//! signatures stay fresh). Request i is due at i / RATE seconds; a request is sent when due even
//! if earlier ones are unanswered, unless MAX_IN_FLIGHT (default 4096) are: then it is skipped
//! and counted. Latency runs from the send to the last body byte; `lag` is how late the send was
//! against its due time (the load generator itself falling behind, or stdin running dry).
//!
//! WINDOWS_OUT gets one JSON line per WINDOW_SECS (default 10): requests sent in the window, and
//! of those answered in it 2xx, non-2xx (by status), errors (no answer), p50/p99/max latency.
//! ACKED_OUT gets the emails of every 2xx, one a line. Stdout: one JSON summary line at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

/// One request as bench/soak.py wrote it.
struct Request {
    emails: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse(line: &str) -> Option<Request> {
    let mut fields: Vec<&str> = line.split('\t').collect();
    if fields.len() < 3 {
        return None;
    }
    let body = fields.pop()?.to_owned();
    let headers = fields[2..]
        .iter()
        .map(|h| h.split_once(": ").map(|(n, v)| (n.to_owned(), v.to_owned())))
        .collect::<Option<Vec<_>>>()?;
    Some(Request { emails: fields[0].to_owned(), path: fields[1].to_owned(), headers, body })
}

/// What one window saw; swapped out whole when the window ends.
struct Window {
    sent: u64,
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    skipped: u64,
    /// Microseconds, send to last body byte.
    latency: Histogram<u64>,
    /// Microseconds the send was late against its due time.
    lag: Histogram<u64>,
}

impl Window {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
        Self { sent: 0, ok: 0, statuses: BTreeMap::new(), errors: 0, skipped: 0, latency: histogram(), lag: histogram() }
    }

    fn non_2xx(&self) -> u64 {
        self.statuses.values().sum()
    }
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

fn summary(w: &Window) -> serde_json::Value {
    json!({
        "sent": w.sent, "ok": w.ok, "non_2xx": w.non_2xx(), "errors": w.errors, "skipped": w.skipped,
        "statuses": w.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "answered": w.latency.len(),
        "p50_ms": ms(w.latency.value_at_quantile(0.5)), "p99_ms": ms(w.latency.value_at_quantile(0.99)),
        "max_ms": ms(w.latency.max()),
        "lag_p99_ms": ms(w.lag.value_at_quantile(0.99)), "lag_max_ms": ms(w.lag.max()),
    })
}

struct Shared {
    window: Mutex<Window>,
    total: Mutex<Window>,
    in_flight: AtomicU64,
}

impl Shared {
    fn record(&self, f: impl Fn(&mut Window)) {
        f(&mut self.window.lock().unwrap());
        f(&mut self.total.lock().unwrap());
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str, default: Option<T>) -> T {
    match args.get(i) {
        Some(text) => text.parse().unwrap_or_else(|_| panic!("{name} must be a number")),
        None => default.unwrap_or_else(|| {
            eprintln!("usage: bench-soakload BASE_URL RATE SECONDS WINDOWS_OUT ACKED_OUT [WINDOW_SECS] [MAX_IN_FLIGHT]");
            std::process::exit(2)
        }),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base: String = arg(&args, 1, "BASE_URL", None);
    let rate: f64 = arg(&args, 2, "RATE", None);
    let seconds: f64 = arg(&args, 3, "SECONDS", None);
    let windows_out: String = arg(&args, 4, "WINDOWS_OUT", None);
    let acked_out: String = arg(&args, 5, "ACKED_OUT", None);
    let window_secs: u64 = arg(&args, 6, "WINDOW_SECS", Some(10));
    let max_in_flight: u64 = arg(&args, 7, "MAX_IN_FLIGHT", Some(4096));

    // Stdin on a thread of its own; the channel holds about two seconds of requests, so the
    // writer's signatures are never older than that when sent.
    let (tx, mut rx) = mpsc::channel::<Request>((2.0 * rate).max(16.0) as usize);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let line = line.expect("read stdin");
            let request = parse(&line).unwrap_or_else(|| panic!("bad request line: {line:.80}"));
            if tx.blocking_send(request).is_err() {
                break;
            }
        }
    });
    let (acked_tx, mut acked_rx) = mpsc::unbounded_channel::<String>();
    let acked_writer = tokio::spawn(async move {
        let mut out = BufWriter::new(File::create(&acked_out).expect("create ACKED_OUT"));
        while let Some(emails) = acked_rx.recv().await {
            for email in emails.split(',') {
                writeln!(out, "{email}").expect("write ACKED_OUT");
            }
        }
        out.flush().expect("flush ACKED_OUT");
    });

    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max_in_flight as usize)
        .build()
        .expect("build the HTTP client");
    let shared = Arc::new(Shared {
        window: Mutex::new(Window::new()),
        total: Mutex::new(Window::new()),
        in_flight: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut windows = BufWriter::new(File::create(&windows_out).expect("create WINDOWS_OUT"));
    let reporter = {
        let shared = shared.clone();
        tokio::spawn(async move {
            for n in 1.. {
                sleep_until(start + Duration::from_secs(n * window_secs)).await;
                let w = std::mem::replace(&mut *shared.window.lock().unwrap(), Window::new());
                let mut line = summary(&w);
                line["window"] = json!(n);
                line["t_s"] = json!(n * window_secs);
                line["in_flight"] = json!(shared.in_flight.load(Ordering::Relaxed));
                writeln!(windows, "{line}").expect("write WINDOWS_OUT");
                windows.flush().expect("flush WINDOWS_OUT");
            }
        })
    };

    let total = (rate * seconds).round() as u64;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        sleep_until(due).await;
        let Some(request) = rx.recv().await else {
            eprintln!("stdin ended after {i} requests");
            break;
        };
        if shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
            shared.record(|w| w.skipped += 1);
            continue;
        }
        let lag_us = Instant::now().saturating_duration_since(due).as_micros() as u64;
        shared.record(|w| {
            w.sent += 1;
            w.lag.saturating_record(lag_us.max(1));
        });
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, shared, acked_tx) = (client.clone(), shared.clone(), acked_tx.clone());
        let url = format!("{base}{}", request.path);
        tokio::spawn(async move {
            let sent = Instant::now();
            let mut builder = client.post(url).body(request.body);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            let status = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            let us = sent.elapsed().as_micros() as u64;
            match status {
                Some(s) if s.is_success() => {
                    let _ = acked_tx.send(request.emails);
                    shared.record(|w| {
                        w.ok += 1;
                        w.latency.saturating_record(us.max(1));
                    });
                }
                Some(s) => shared.record(|w| {
                    *w.statuses.entry(s.as_u16()).or_default() += 1;
                    w.latency.saturating_record(us.max(1));
                }),
                None => shared.record(|w| w.errors += 1),
            }
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let sending_s = start.elapsed().as_secs_f64();
    // Every request gets its answer or its timeout (30 s) before the totals are read.
    let deadline = Instant::now() + Duration::from_secs(35);
    while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }
    // One more window line for the tail, then stop the reporter.
    let elapsed = start.elapsed().as_secs();
    sleep_until(start + Duration::from_secs((elapsed / window_secs + 1) * window_secs + 1)).await;
    reporter.abort();
    drop(acked_tx);
    acked_writer.await.expect("the acked writer panicked");
    let total_window = shared.total.lock().unwrap();
    let mut line = summary(&total_window);
    line["sending_s"] = json!((sending_s * 1000.0).round() / 1000.0);
    line["rate_held"] = json!((total_window.sent as f64 / sending_s * 10.0).round() / 10.0);
    line["target_rate"] = json!(rate);
    line["unanswered"] = json!(shared.in_flight.load(Ordering::Relaxed));
    println!("{line}");
}
