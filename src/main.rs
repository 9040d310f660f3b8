//! The `tallyfy-bridge` command: parse the command line, load settings, start logging, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tallyfy_bridge::configuration::ConfigError;
use tallyfy_bridge::outbox::sqlite;
use tallyfy_bridge::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use tallyfy_bridge::{Application, Settings, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Creates CRM contacts as Tallyfy guests, exactly once per email"
)]
struct Cli {
    /// Directory holding {APP_ENV}.toml overrides.
    #[arg(
        long,
        env = "BRIDGE_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Accept webhooks and deliver them (the default).
    Serve {
        /// Deliver to a built-in fake Tallyfy instead of the real one: no credentials needed.
        #[arg(long)]
        sandbox: bool,
        /// Where the built-in sandbox listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        sandbox_addr: SocketAddr,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Exit 0 if the bridge answers its readiness probe (for container HEALTHCHECKs, which
    /// have no curl in a slim image).
    Healthcheck {
        /// Default: /health/ready on the configured http.port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Run only the fake Tallyfy guest API (for demos and tests).
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
        /// The sandbox's settings as JSON, e.g. '{"duplicate_mode":"reject422",
        /// "faults":{"error_rate":0.1}}'; missing keys keep their defaults.
        #[arg(long, default_value = "{}")]
        config: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        sandbox: false,
        sandbox_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
    });
    let result = match command {
        Command::Serve {
            sandbox,
            sandbox_addr,
        } => serve(&cli.config_dir, sandbox.then_some(sandbox_addr)).await,
        Command::Migrate => migrate(&cli.config_dir).await,
        Command::Healthcheck { url } => healthcheck(&cli.config_dir, url).await,
        Command::Sandbox { addr, config } => run_sandbox(addr, &config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(code)) => code,
        Err(Failure::Run(error)) => {
            tracing::error!(error = %format!("{error:#}"), "Exiting on error");
            eprintln!("tallyfy-bridge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// Already reported in one line.
    Config(ExitCode),
    Run(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Run(error)
    }
}

/// Starts logging with loaded settings; a bad setting is one line on stderr and exit code 2.
fn started(loaded: Result<Settings, ConfigError>) -> Result<Settings, Failure> {
    match loaded {
        Ok(settings) => {
            telemetry::init(&settings.log);
            Ok(settings)
        }
        Err(error) => {
            eprintln!("tallyfy-bridge: {error}");
            Err(Failure::Config(ExitCode::from(2)))
        }
    }
}

async fn serve(config_dir: &std::path::Path, sandbox: Option<SocketAddr>) -> Result<(), Failure> {
    let (overrides, sandbox) = match sandbox {
        None => (Vec::new(), None),
        Some(addr) => {
            let config = SandboxConfig::default();
            let handle = Sandbox::start(config.clone(), addr).await?;
            let overrides = vec![
                ("BRIDGE__TALLYFY__BASE_URL", handle.base_url()),
                ("BRIDGE__TALLYFY__ORG_ID", config.org_id),
                ("BRIDGE__TALLYFY__TOKEN", config.token),
            ];
            (overrides, Some(handle))
        }
    };
    let settings = started(Settings::load(config_dir, &overrides))?;
    let app = Application::build(settings.clone()).await?;
    if let Some(sandbox) = &sandbox {
        announce_demo(&settings, app.port(), sandbox);
    }
    app.run_until_stopped(shutdown_signal()).await?;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(())
}

/// Tells a person trying the bridge where to post and where to look.
fn announce_demo(settings: &Settings, port: u16, sandbox: &SandboxHandle) {
    let host = &settings.http.host;
    tracing::warn!(
        sandbox = %sandbox.base_url(),
        "--sandbox: guests are created in a built-in fake Tallyfy, not in your Tallyfy account"
    );
    println!(
        "\ntallyfy-bridge demo\n  POST contacts to  http://{host}:{port}/webhooks/contacts\n  \
         status            http://{host}:{port}/status\n  \
         sandbox guests    {}/_sandbox/guests\n",
        sandbox.base_url()
    );
}

async fn migrate(config_dir: &std::path::Path) -> Result<(), Failure> {
    let settings = started(Settings::load_for_maintenance(config_dir, &[]))?;
    sqlite::migrate_file(&settings.database).await?;
    tracing::info!("Migrations applied");
    Ok(())
}

async fn healthcheck(config_dir: &std::path::Path, url: Option<String>) -> Result<(), Failure> {
    let url = match url {
        Some(url) => url,
        None => {
            let settings = Settings::load_for_maintenance(config_dir, &[])
                .map_err(|e| Failure::Run(e.into()))?;
            format!("http://127.0.0.1:{}/health/ready", settings.http.port)
        }
    };
    let response = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .with_context(|| format!("Failed to reach {url}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Failure::Run(anyhow::anyhow!(
            "{url} answered {}",
            response.status()
        )))
    }
}

async fn run_sandbox(addr: SocketAddr, config: &str) -> Result<(), Failure> {
    telemetry::init(&tallyfy_bridge::configuration::LogSettings {
        format: tallyfy_bridge::configuration::LogFormat::Pretty,
        level: "info".into(),
    });
    let config: SandboxConfig =
        serde_json::from_str(config).context("Failed to parse --config as sandbox settings")?;
    let handle = Sandbox::start(config, addr).await?;
    tracing::info!(base_url = %handle.base_url(), "Tallyfy sandbox listening");
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (docker stop).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the bridge");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
