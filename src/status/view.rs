//! The answers of `/status` and the health checks as types: what the handlers send and what
//! `/openapi.json` documents are the same structs. A new `/status` section is a new field here.

use serde::Serialize;
use utoipa::ToSchema;

use super::{RefusedCount, Snapshot, StateCounts};
use crate::delivery::pacing::PacingView;
use crate::reconcile::status::ReconcileStatus;
use crate::tallyfy::TallyfyStatus;

/// `200 /status`: the database could be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// The bridge's version (`Cargo.toml`).
    pub version: &'static str,
    /// Whole seconds since start.
    pub uptime_secs: u64,
    pub database: DatabaseStatus,
    /// The webhook paths this deployment accepts, a secret URL segment shown as `{token}`.
    pub webhooks: Vec<String>,
    pub outbox: OutboxStatus,
    pub delivery: DeliveryStatus,
    /// The Tallyfy credentials in use (never the token).
    pub tallyfy: TallyfyStatus,
    pub refused: RefusedStatus,
    pub retention: RetentionStatus,
    /// Each CRM that can be reconciled (its API credentials set): schedule, watermark, last run
    /// and webhook subscription.
    pub reconcile: Vec<ReconcileStatus>,
}

/// `503 /status`: the figures could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusUnavailable {
    pub version: &'static str,
    pub uptime_secs: u64,
    pub database: DatabaseDown,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseStatus {
    /// Always `true` here.
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// SQLite: pages × page size, the WAL not included.
    pub size_bytes: Option<i64>,
    /// PostgreSQL: the bridges delivering from this database whose heartbeat came in the last
    /// hour, newest first (empty on SQLite: one bridge per file).
    pub replicas: Vec<ReplicaStatus>,
}

/// One bridge process sharing the database.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaStatus {
    /// `host:pid`.
    pub replica: String,
    /// The replica answering this request.
    pub this: bool,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub heartbeat_at: Option<String>,
    pub heartbeat_age_secs: Option<f64>,
}

impl DatabaseStatus {
    pub fn new(
        store: &dyn crate::outbox::Store,
        snapshot: &Snapshot,
        replicas: Vec<crate::outbox::Replica>,
        now: i64,
    ) -> Self {
        let this = store.replica_id();
        Self {
            ok: true,
            backend: store.backend(),
            size_bytes: snapshot.database_bytes,
            replicas: replicas
                .into_iter()
                .map(|r| ReplicaStatus {
                    this: this == Some(r.replica_id.as_str()),
                    replica: r.replica_id,
                    started_at: iso(Some(r.started_at)),
                    heartbeat_at: iso(Some(r.heartbeat_at)),
                    heartbeat_age_secs: age_secs(Some(r.heartbeat_at), now),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseDown {
    /// Always `false` here.
    pub ok: bool,
    /// Set when the database file was deleted or replaced under the running bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxStatus {
    pub counts: StateCounts,
    /// Arrival (RFC 3339) of the oldest row still queued, in flight or retrying.
    #[schema(format = DateTime)]
    pub oldest_waiting_at: Option<String>,
    pub oldest_waiting_age_secs: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryStatus {
    /// Paused because Tallyfy refused the credentials (401/403).
    pub paused: bool,
    pub paused_reason: Option<String>,
    /// After a 429 from Tallyfy: nothing is sent before this time.
    #[schema(format = DateTime)]
    pub rate_limited_until: Option<String>,
    #[schema(format = DateTime)]
    pub heartbeat_at: Option<String>,
    pub heartbeat_age_secs: Option<f64>,
    #[schema(format = DateTime)]
    pub last_delivered_at: Option<String>,
    /// Redacted: no tokens, no email local parts.
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub last_error_at: Option<String>,
    /// The create budget under Tallyfy's hourly guest cap and the backlog's drain.
    pub pacing: PacingView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedStatus {
    pub total: i64,
    pub by_source: Vec<RefusedCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionStatus {
    #[schema(format = DateTime)]
    pub last_prune_at: Option<String>,
    pub last_prune_rows: Option<i64>,
}

/// `/health/live` and `/health/ready` when healthy.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `live` or `ready`.
    pub status: &'static str,
}

fn iso(ms: Option<i64>) -> Option<String> {
    ms.and_then(crate::time::rfc3339)
}

fn age_secs(ms: Option<i64>, now: i64) -> Option<f64> {
    ms.map(|t| ((now - t).max(0) as f64) / 1000.0)
}

impl Status {
    pub fn new(
        uptime_secs: u64,
        webhooks: Vec<String>,
        database: DatabaseStatus,
        snapshot: Snapshot,
        tallyfy: TallyfyStatus,
        reconcile: Vec<ReconcileStatus>,
        now: i64,
    ) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs,
            database,
            webhooks,
            outbox: OutboxStatus {
                counts: snapshot.counts,
                oldest_waiting_at: iso(snapshot.oldest_waiting_at),
                oldest_waiting_age_secs: age_secs(snapshot.oldest_waiting_at, now),
            },
            delivery: DeliveryStatus {
                paused: snapshot.paused_reason.is_some(),
                paused_reason: snapshot.paused_reason,
                rate_limited_until: iso(snapshot.rate_limited_until.filter(|until| *until > now)),
                heartbeat_at: iso(snapshot.heartbeat_at),
                heartbeat_age_secs: age_secs(snapshot.heartbeat_at, now),
                last_delivered_at: iso(snapshot.last_delivered_at),
                last_error: snapshot.last_error,
                last_error_at: iso(snapshot.last_error_at),
                pacing: PacingView::of(&snapshot.pacing),
            },
            tallyfy,
            refused: RefusedStatus {
                total: snapshot.refused.iter().map(|r| r.n).sum(),
                by_source: snapshot.refused,
            },
            retention: RetentionStatus {
                last_prune_at: iso(snapshot.last_prune_at),
                last_prune_rows: snapshot.last_prune_rows,
            },
            reconcile,
        }
    }
}

impl StatusUnavailable {
    pub fn new(uptime_secs: u64, problem: Option<String>) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs,
            database: DatabaseDown { ok: false, problem },
        }
    }
}
