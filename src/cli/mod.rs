//! `tallyfy-bridge deliveries …`, `refused list` and `reconcile`: the admin API from a
//! terminal, as an aligned table (or the API's JSON with `--json`), errors in one line; and
//! `connect`, which talks to the CRM itself.

mod client;
mod reconcile;
mod table;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use client::Admin;
pub use reconcile::{ConnectArgs, Crm, ReconcileArgs, connect, reconcile};

/// Where the bridge is and how to print; the token comes from `BRIDGE__ADMIN__TOKEN`.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// The bridge's address. Default: http://127.0.0.1:<http.port> from the settings.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Which deliveries: every option given must match.
#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// queued, in_flight, retrying, delivered, failed or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// The CRM: canonical, hubspot, pipedrive, salesforce.
    #[arg(long)]
    pub source: Option<String>,
    /// Normalised as the bridge stores it (case and spaces do not matter).
    #[arg(long)]
    pub email: Option<String>,
    /// Received at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Received before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
}

impl Filter {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("state", &self.state),
            ("source", &self.source),
            ("email", &self.email),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Rows per page (1 to 500, default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// The page after the one that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One delivery with its attempt log.
    Show { id: i64 },
    /// Send a failed (or cancelled) delivery again now: one ID, or every row matching a filter
    /// (`--state failed` required).
    Retry(Change),
    /// Cancel a queued, retrying or failed delivery: one ID, or every row matching a filter.
    Cancel(Change),
}

#[derive(Args, Debug, Clone)]
pub struct Change {
    /// The delivery; without it the filter chooses (bulk).
    pub id: Option<i64>,
    #[command(flatten)]
    pub filter: Filter,
    /// Most rows a bulk change moves (default 1000, at most 10000).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RefusedCommand {
    /// List CRM items the bridge did not queue, newest first.
    List {
        #[arg(long)]
        source: Option<String>,
        /// A reason code such as missing_email.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// The environment variable the token is read from (the one the server reads).
pub const TOKEN_VAR: &str = "BRIDGE__ADMIN__TOKEN";

/// Runs a `deliveries` command against `url` and prints its answer.
pub async fn deliveries(command: DeliveriesCommand, url: &str, json: bool) -> anyhow::Result<()> {
    let admin = Admin::from_env(url)?;
    let (answer, render): (Value, fn(&Value) -> String) = match command {
        DeliveriesCommand::List {
            filter,
            limit,
            cursor,
        } => {
            let mut query = filter.pairs();
            let limit = limit.map(|n| n.to_string());
            query.extend(limit.as_deref().map(|l| ("limit", l)));
            query.extend(cursor.as_deref().map(|c| ("cursor", c)));
            (admin.get("/deliveries", &query).await?, table::deliveries)
        }
        DeliveriesCommand::Show { id } => (
            admin.get(&format!("/deliveries/{id}"), &[]).await?,
            table::delivery_with_attempts,
        ),
        DeliveriesCommand::Retry(change) => change_answer(&admin, "retry", change).await?,
        DeliveriesCommand::Cancel(change) => change_answer(&admin, "cancel", change).await?,
    };
    print(&answer, json, render)
}

async fn change_answer(
    admin: &Admin,
    action: &str,
    change: Change,
) -> anyhow::Result<(Value, fn(&Value) -> String)> {
    match change.id {
        Some(id) => {
            anyhow::ensure!(
                change.filter.pairs().is_empty() && change.limit.is_none(),
                "give a delivery ID or a filter, not both"
            );
            let path = format!("/deliveries/{id}/{action}");
            Ok((admin.post(&path, None).await?, table::one_delivery))
        }
        None => {
            let mut body = serde_json::Map::new();
            for (name, value) in change.filter.pairs() {
                body.insert(name.into(), json!(value));
            }
            if let Some(limit) = change.limit {
                body.insert("limit".into(), json!(limit));
            }
            let path = format!("/deliveries/{action}");
            Ok((
                admin.post(&path, Some(Value::Object(body))).await?,
                table::moved,
            ))
        }
    }
}

/// Runs a `refused` command against `url` and prints its answer.
pub async fn refused(command: RefusedCommand, url: &str, json: bool) -> anyhow::Result<()> {
    let admin = Admin::from_env(url)?;
    let RefusedCommand::List {
        source,
        reason,
        since,
        until,
        limit,
        cursor,
    } = command;
    let limit = limit.map(|n| n.to_string());
    let query: Vec<(&str, &str)> = [
        ("source", &source),
        ("reason", &reason),
        ("since", &since),
        ("until", &until),
        ("limit", &limit),
        ("cursor", &cursor),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    let answer = admin.get("/refused", &query).await?;
    print(&answer, json, table::refused)
}

fn print(answer: &Value, json: bool, render: fn(&Value) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        print!("{}", render(answer));
    }
    Ok(())
}
