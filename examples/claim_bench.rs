//! Benchmark databases and claim timing for `bench/bench.py`: seeds an outbox through the
//! crate's migrations, and times the delivery worker's own claim on the bundled SQLite.
//!
//! ```text
//! claim_bench seed DB COUNT PREFIX QUEUED_EVERY SPACING_MS
//! claim_bench time DB LIMIT REPS SAMPLES_FILE
//! claim_bench pages DB REPS SAMPLES_PREFIX
//! ```
//!
//! `seed` creates DB, applies `migrations/` and runs `bench/sql/seed.sql.in` (COUNT rows, row n
//! queued when n % QUEUED_EVERY = 0, delivered otherwise). `time` calls the claim REPS times
//! (after 5 warm-up calls), each inside `BEGIN … ROLLBACK` on the pool's one connection, so
//! every call sees the same due rows and nothing changes; it writes every timing (µs) to
//! SAMPLES_FILE, prints one `CLAIM limit=… reps=… rows=… median_us=… p90_us=…` line on stdout
//! and the claim's query plan on stderr. `pages` times one page of the admin list
//! (`GET /deliveries`, limit 50, the crate's own `list_deliveries`) REPS times per filter (none,
//! state, source, email, and none from a cursor half way down), writing SAMPLES_PREFIX-<filter>
//! and printing one `PAGE filter=… reps=… rows=… median_us=… p90_us=…` line per filter.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Row};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

/// The one call into the crate: the claim the delivery worker runs.
async fn claim(
    pool: &SqlitePool,
    now: i64,
    limit: usize,
    lease_until: i64,
) -> anyhow::Result<usize> {
    let claimed =
        tallyfy_bridge::outbox::sqlite::claim_due(pool, "demo-org", now, limit, lease_until)
            .await?;
    Ok(claimed.len())
}

/// Unix milliseconds, the unit of every outbox time column.
fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_millis() as i64
}

/// `delivery.lease_secs`' default, in milliseconds.
const LEASE_MS: i64 = 90_000;
const WARM_UP: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["seed", db, count, prefix, queued_every, spacing_ms] => {
            seed(
                Path::new(db),
                count.parse()?,
                prefix,
                queued_every.parse()?,
                spacing_ms.parse()?,
            )
            .await
        }
        ["time", db, limit, reps, samples] => {
            time(
                Path::new(db),
                limit.parse()?,
                reps.parse()?,
                Path::new(samples),
            )
            .await
        }
        ["pages", db, reps, prefix] => pages(Path::new(db), reps.parse()?, prefix).await,
        _ => bail!(
            "usage: claim_bench seed DB COUNT PREFIX QUEUED_EVERY SPACING_MS\n       \
             claim_bench time DB LIMIT REPS SAMPLES_FILE\n       \
             claim_bench pages DB REPS SAMPLES_PREFIX"
        ),
    }
}

fn options(db: &Path) -> anyhow::Result<SqliteConnectOptions> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true),
    )
}

async fn seed(
    db: &Path,
    count: u64,
    prefix: &str,
    queued_every: u64,
    spacing_ms: u64,
) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut conn = options(db)?
        .connect()
        .await
        .context("Failed to create the database")?;
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .context("Failed to apply the migrations")?;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/sql/seed.sql.in");
    let script = std::fs::read_to_string(&template)
        .with_context(|| format!("Failed to read {}", template.display()))?
        .replace("@COUNT@", &count.to_string())
        .replace("@PREFIX@", prefix)
        .replace("@QUEUED_EVERY@", &queued_every.to_string())
        .replace("@SPACING_MS@", &spacing_ms.to_string());
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .context("Failed to seed the outbox")?;
    conn.close().await?;
    Ok(())
}

async fn time(db: &Path, limit: usize, reps: usize, samples_file: &Path) -> anyhow::Result<()> {
    // One connection, so BEGIN, the claim and ROLLBACK all run on it.
    let pool = SqlitePoolOptions::new()
        .min_connections(1)
        .max_connections(1)
        .connect_with(options(db)?.create_if_missing(false))
        .await
        .with_context(|| format!("Failed to open {}", db.display()))?;
    let now = now_ms();
    print_plan(db, now, limit).await?;
    let mut samples = Vec::with_capacity(reps);
    let mut rows = 0;
    for i in 0..reps + WARM_UP {
        sqlx::raw_sql("BEGIN").execute(&pool).await?;
        let started = Instant::now();
        rows = claim(&pool, now, limit, now + LEASE_MS).await?;
        let elapsed = started.elapsed();
        sqlx::raw_sql("ROLLBACK").execute(&pool).await?;
        if i >= WARM_UP {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    let lines: String = samples.iter().map(|s| format!("{s:.1}\n")).collect();
    std::fs::write(samples_file, lines)
        .with_context(|| format!("Failed to write {}", samples_file.display()))?;
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        samples[((q * (samples.len() - 1) as f64).round() as usize).min(samples.len() - 1)]
    };
    println!(
        "CLAIM limit={limit} reps={reps} rows={rows} median_us={:.0} p90_us={:.0} min_us={:.0} max_us={:.0} sqlite={}",
        rank(0.5),
        rank(0.9),
        samples[0],
        samples[samples.len() - 1],
        sqlite_version(&pool).await?
    );
    Ok(())
}

/// Rows per page the admin list answers by default.
const PAGE_LIMIT: usize = 50;

/// Times a page of the admin list per filter; the email and cursor are the middle row's.
async fn pages(db: &Path, reps: usize, prefix: &str) -> anyhow::Result<()> {
    use tallyfy_bridge::ops::deliveries::DeliveryFilter;
    use tallyfy_bridge::ops::page::Cursor;
    use tallyfy_bridge::outbox::RowState;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(db)?.create_if_missing(false))
        .await
        .with_context(|| format!("Failed to open {}", db.display()))?;
    let (id, email, received_at): (i64, String, i64) = sqlx::query_as(
        "SELECT id, email, received_at FROM outbox WHERE id >= (SELECT max(id) / 2 FROM outbox)
         ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .context("Failed to read the middle row")?;
    let middle = Cursor {
        at: received_at,
        id,
    };
    let cases = [
        ("none", DeliveryFilter::default(), None),
        (
            "state",
            DeliveryFilter {
                state: Some(RowState::Delivered),
                ..DeliveryFilter::default()
            },
            None,
        ),
        (
            "source",
            DeliveryFilter {
                source: Some("canonical".into()),
                ..DeliveryFilter::default()
            },
            None,
        ),
        (
            "email",
            DeliveryFilter {
                email: Some(email),
                ..DeliveryFilter::default()
            },
            None,
        ),
        ("none_deep", DeliveryFilter::default(), Some(middle)),
    ];
    for (name, filter, after) in cases {
        let mut samples = Vec::with_capacity(reps);
        let mut rows = 0;
        for i in 0..reps + WARM_UP {
            let started = Instant::now();
            rows =
                tallyfy_bridge::outbox::sqlite::list_deliveries(&pool, &filter, after, PAGE_LIMIT)
                    .await?
                    .len();
            if i >= WARM_UP {
                samples.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        let file = format!("{prefix}-{name}.txt");
        let lines: String = samples.iter().map(|s| format!("{s:.1}\n")).collect();
        std::fs::write(&file, lines).with_context(|| format!("Failed to write {file}"))?;
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            samples[((q * (samples.len() - 1) as f64).round() as usize).min(samples.len() - 1)]
        };
        println!(
            "PAGE filter={name} reps={reps} rows={rows} median_us={:.0} p90_us={:.0}",
            rank(0.5),
            rank(0.9)
        );
    }
    Ok(())
}

async fn sqlite_version(pool: &SqlitePool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(pool)
        .await?)
}

/// Prints `EXPLAIN QUERY PLAN` of the statement the claim sends. The statement is read from
/// sqlx's statement log of one claim (on a separate pool that logs), not copied from the source.
async fn print_plan(db: &Path, now: i64, limit: usize) -> anyhow::Result<()> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(StatementLog(seen.clone()));
    tracing::subscriber::set_global_default(subscriber).context("Failed to capture statements")?;
    let logging = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            options(db)?
                .create_if_missing(false)
                .log_statements(tracing::log::LevelFilter::Info),
        )
        .await?;
    sqlx::raw_sql("BEGIN").execute(&logging).await?;
    claim(&logging, now, limit, now + LEASE_MS).await?;
    let statements = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let Some(sql) = statements.iter().find(|s| s.contains("UPDATE outbox")) else {
        bail!("the claim sent no UPDATE of outbox (statements seen: {statements:?})");
    };
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let window = (limit * 8 + 64) as i64;
    let plan = sqlx::query(sqlx::AssertSqlSafe(explain))
        .bind(now)
        .bind(limit as i64)
        .bind(window)
        .bind(now + LEASE_MS)
        .fetch_all(&logging)
        .await
        .context("Failed to explain the claim")?;
    for row in plan {
        eprintln!("  plan: {}", row.try_get::<String, _>("detail")?);
    }
    sqlx::raw_sql("ROLLBACK").execute(&logging).await?;
    logging.close().await;
    Ok(())
}

/// Keeps the SQL of every statement sqlx logs (its `db.statement` field).
struct StatementLog(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        struct Statement(Option<String>);
        impl tracing::field::Visit for Statement {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "db.statement" {
                    self.0 = Some(value.trim().to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut statement = Statement(None);
        event.record(&mut statement);
        if let (Some(sql), Ok(mut seen)) = (statement.0, self.0.lock()) {
            seen.push(sql);
        }
    }
}
