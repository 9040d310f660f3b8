//! `tallyfy-bridge reconcile` (a run in the bridge, through its admin API) and
//! `tallyfy-bridge connect` (the CRM-side webhook subscription, from this machine with the
//! configured CRM credentials).

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::client::Admin;
use super::print;
use crate::Settings;
use crate::crm::listing::{Connected, Subscription, SubscriptionState};
use crate::crm::{hubspot, pipedrive, salesforce};
use crate::reconcile::subscription_state;

/// A reconcile of a large CRM can take minutes (HubSpot lists 200 contacts per request at 4
/// requests a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Crm {
    Pipedrive,
    Hubspot,
    Salesforce,
}

impl Crm {
    fn source(self) -> &'static str {
        match self {
            Self::Pipedrive => "pipedrive",
            Self::Hubspot => "hubspot",
            Self::Salesforce => "salesforce",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// The CRM to ask.
    #[arg(long, value_enum)]
    pub source: Crm,
    /// List contacts created from this RFC 3339 time (default: the watermark less the overlap).
    #[arg(long, conflicts_with = "days")]
    pub since: Option<String>,
    /// Or from this many days ago.
    #[arg(long)]
    pub days: Option<u64>,
    /// Count what would be queued; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[arg(value_enum)]
    pub crm: Crm,
    /// This bridge's public base URL (https://bridge.example.com); the webhook path is added.
    #[arg(long)]
    pub url: String,
    /// Only tell whether the subscription exists, is active and points here (exit 1 if not).
    #[arg(long)]
    pub check: bool,
}

/// Runs one reconcile in the bridge at `url` and prints its report; fails when it stopped early.
pub async fn reconcile(args: ReconcileArgs, url: &str, json_out: bool) -> anyhow::Result<()> {
    let admin = Admin::from_env(url)?.with_timeout(RUN_TIMEOUT)?;
    let mut body = serde_json::Map::new();
    if let Some(since) = args.since {
        body.insert("since".into(), json!(since));
    }
    if let Some(days) = args.days {
        body.insert("days".into(), json!(days));
    }
    body.insert("dry_run".into(), json!(args.dry_run));
    let path = format!("/reconcile/{}", args.source.source());
    let report = admin.post(&path, Some(Value::Object(body))).await?;
    print(&report, json_out, render)?;
    match report["error"].as_str() {
        Some(error) => anyhow::bail!("the reconcile stopped early: {error}"),
        None => Ok(()),
    }
}

fn render(report: &Value) -> String {
    let n = |key: &str| report[key].as_u64().unwrap_or(0);
    let text = |key: &str| report[key].as_str().unwrap_or("?").to_owned();
    let verb = if report["dry_run"].as_bool() == Some(true) {
        "would queue"
    } else {
        "queued"
    };
    format!(
        "{}: contacts created {} to {}: {} listed, {verb} {}, {} already known, {} refused (no usable email); {} requests, {} rate limited\n",
        text("source"),
        text("since"),
        text("until"),
        n("listed"),
        n("queued"),
        n("already"),
        n("refused"),
        report["stats"]["requests"].as_u64().unwrap_or(0),
        report["stats"]["rate_limited"].as_u64().unwrap_or(0),
    )
}

/// The full webhook URL of `crm` under the public base `url` (as given, if it already is one).
pub fn webhook_url(crm: Crm, url: &str, settings: &Settings) -> String {
    let base = url.trim().trim_end_matches('/');
    let path = format!("/webhooks/{}", crm.source());
    let full = if base.ends_with(&path) || base.contains(&format!("{path}/")) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    };
    match (crm, &settings.sources.salesforce.endpoint_token) {
        (Crm::Salesforce, Some(token)) if !full.contains(&format!("{path}/")) => {
            use secrecy::ExposeSecret;
            format!("{full}/{}", token.to_secret_string().expose_secret())
        }
        _ => full,
    }
}

/// Creates (or with `--check` only checks) the subscription; prints what it found or did.
pub async fn connect(args: ConnectArgs, settings: &Settings) -> anyhow::Result<()> {
    let target = webhook_url(args.crm, &args.url, settings);
    let sources = &settings.sources;
    let subscriptions = match args.crm {
        Crm::Pipedrive => pipedrive::reconcile::subscriptions(&sources.pipedrive, &target)?,
        Crm::Hubspot => hubspot::reconcile::subscriptions(&sources.hubspot, &target)?,
        Crm::Salesforce => {
            print!("{}", salesforce::instructions(&sources.salesforce, &target));
            return Ok(());
        }
    };
    let Some(subscriptions) = subscriptions else {
        anyhow::bail!(
            "{} is not configured for connect: see docs/crm-{}.md#connect for the settings it needs",
            args.crm.source(),
            args.crm.source()
        );
    };
    if args.check {
        let found = subscriptions.check().await?;
        println!("{}", line(&found, &target));
        anyhow::ensure!(
            found.state == SubscriptionState::Ok,
            "the subscription needs `tallyfy-bridge connect {}`",
            args.crm.source()
        );
        return Ok(());
    }
    let (connected, found) = subscriptions.connect().await?;
    let did = match connected {
        Connected::Reused => "already there, reused",
        Connected::Created => "created",
        Connected::Updated => "updated",
    };
    println!(
        "{} webhook {did}: {}",
        args.crm.source(),
        line(&found, &target)
    );
    Ok(())
}

fn line(found: &Subscription, target: &str) -> String {
    format!(
        "{} ({}) for {}",
        subscription_state(found),
        found.detail,
        target
    )
}
