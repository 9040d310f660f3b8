//! The `tallyfy-bridge` command: parse the command line, load settings, start logging, run.

#[cfg(feature = "sandbox")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tallyfy_bridge::cli;
use tallyfy_bridge::configuration::ConfigError;
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
    Serve(ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Exit 0 if the bridge answers its readiness probe (for container HEALTHCHECKs, which
    /// have no curl in a slim image).
    Healthcheck {
        /// Default: /health/ready on the configured http.port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Find, show, retry and cancel deliveries through a running bridge's admin API (token from
    /// BRIDGE__ADMIN__TOKEN).
    Deliveries {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::DeliveriesCommand,
    },
    /// List CRM items the bridge refused, through a running bridge's admin API.
    Refused {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::RefusedCommand,
    },
    /// Ask a CRM's API for the contacts it created (since the last run) and queue every one no
    /// webhook delivered; runs in the bridge, through its admin API.
    Reconcile {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(flatten)]
        args: cli::ReconcileArgs,
    },
    /// Create the CRM's webhook subscription pointing at this bridge (reusing a matching one),
    /// or check it with --check; for Salesforce, print the setup steps.
    Connect(cli::ConnectArgs),
    /// Run only the fake Tallyfy guest API (for demos and tests).
    #[cfg(feature = "sandbox")]
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
        /// The sandbox's settings as JSON, e.g. '{"duplicate_mode":"reject422",
        /// "faults":{"error_rate":0.1}}'; missing keys keep their defaults.
        #[arg(long, default_value = "{}")]
        config: String,
    },
}

/// Without the `sandbox` feature (the production image) `serve` has no options.
#[derive(Args, Default)]
struct ServeArgs {
    /// Deliver to a built-in fake Tallyfy instead of the real one: no credentials needed.
    #[cfg(feature = "sandbox")]
    #[arg(long)]
    sandbox: bool,
    /// Where the built-in sandbox listens.
    #[cfg(feature = "sandbox")]
    #[arg(long, default_value = "127.0.0.1:8081")]
    sandbox_addr: Option<SocketAddr>,
}

/// mimalloc instead of glibc's malloc, for Rust's allocations (8.5 % fewer instructions per
/// ingested event) and, through the crate's `override` feature, for C's too: SQLite's page
/// caches, statements and temporary B-trees (2 % fewer per event, 7 % fewer per delivered
/// guest at concurrency 4; BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    small_pages_only();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("Error: failed to start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// No transparent huge pages for this process, before anything is allocated: mimalloc asks
/// for them on its arenas (`MADV_HUGEPAGE`), so each 2 MiB range it touched became resident in
/// full and the kernel's khugepaged filled in more over time. Resident memory crept up in
/// 2 MiB steps while the heap stayed the same (issue 18's soak: 24 of the arena's 39 MiB
/// resident were huge pages). Best effort: a kernel without the flag changes nothing else.
fn small_pages_only() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("Warning: could not disable transparent huge pages: {error}");
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()));
    let result = match command {
        Command::Serve(args) => serve(&cli.config_dir, args).await,
        Command::Migrate => migrate(&cli.config_dir).await,
        Command::Healthcheck { url } => healthcheck(&cli.config_dir, url).await,
        Command::Deliveries { remote, command } => match local_url(&cli.config_dir, remote.url) {
            Ok(url) => cli::deliveries(command, &url, remote.json)
                .await
                .map_err(Failure::Run),
            Err(failure) => Err(failure),
        },
        Command::Reconcile { remote, args } => match local_url(&cli.config_dir, remote.url) {
            Ok(url) => cli::reconcile(args, &url, remote.json)
                .await
                .map_err(Failure::Run),
            Err(failure) => Err(failure),
        },
        Command::Connect(args) => connect(&cli.config_dir, args).await,
        Command::Refused { remote, command } => match local_url(&cli.config_dir, remote.url) {
            Ok(url) => cli::refused(command, &url, remote.json)
                .await
                .map_err(Failure::Run),
            Err(failure) => Err(failure),
        },
        #[cfg(feature = "sandbox")]
        Command::Sandbox { addr, config } => demo::run_sandbox(addr, &config).await,
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

async fn serve(config_dir: &std::path::Path, args: ServeArgs) -> Result<(), Failure> {
    #[cfg(feature = "sandbox")]
    if args.sandbox {
        let addr = args
            .sandbox_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
        return demo::serve(config_dir, addr).await;
    }
    let _ = args;
    let settings = started(Settings::load(config_dir, &[]))?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn connect(config_dir: &std::path::Path, args: cli::ConnectArgs) -> Result<(), Failure> {
    let settings = started(Settings::load(config_dir, &[]))?;
    cli::connect(args, &settings).await.map_err(Failure::Run)
}

async fn migrate(config_dir: &std::path::Path) -> Result<(), Failure> {
    let settings = started(Settings::load_for_maintenance(config_dir, &[]))?;
    tallyfy_bridge::outbox::open::migrate(&settings.database).await?;
    tracing::info!("Migrations applied");
    Ok(())
}

/// `url`, or the bridge on this machine at the configured `http.port`.
fn local_url(config_dir: &std::path::Path, url: Option<String>) -> Result<String, Failure> {
    match url {
        Some(url) => Ok(url),
        None => {
            let settings = Settings::load_for_maintenance(config_dir, &[])
                .map_err(|e| Failure::Run(e.into()))?;
            Ok(format!("http://127.0.0.1:{}", settings.http.port))
        }
    }
}

async fn healthcheck(config_dir: &std::path::Path, url: Option<String>) -> Result<(), Failure> {
    let url = match url {
        Some(url) => url,
        None => format!("{}/health/ready", local_url(config_dir, None)?),
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

/// The built-in fake Tallyfy: `serve --sandbox` and `sandbox`, compiled only with the `sandbox`
/// feature.
#[cfg(feature = "sandbox")]
mod demo {
    use std::net::SocketAddr;

    use anyhow::Context;
    use tallyfy_bridge::configuration::{LogFormat, LogSettings};
    use tallyfy_bridge::{Application, Settings, telemetry};
    use tallyfy_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

    use super::{Failure, shutdown_signal, started};

    /// `serve` delivering to a sandbox started beside it, with the sandbox's credentials.
    pub async fn serve(config_dir: &std::path::Path, addr: SocketAddr) -> Result<(), Failure> {
        let config = SandboxConfig::default();
        let sandbox = Sandbox::start(config.clone(), addr).await?;
        // Every mode's credentials, so BRIDGE__TALLYFY__AUTH picks any against the sandbox.
        let overrides = [
            ("BRIDGE__TALLYFY__BASE_URL", sandbox.base_url()),
            ("BRIDGE__TALLYFY__ORG_ID", config.org_id),
            ("BRIDGE__TALLYFY__TOKEN", config.token),
            (
                "BRIDGE__TALLYFY__TOKEN_URL",
                format!("{}/oauth/token", sandbox.base_url()),
            ),
            ("BRIDGE__TALLYFY__CLIENT_ID", config.client_id),
            ("BRIDGE__TALLYFY__CLIENT_SECRET", config.client_secret),
            ("BRIDGE__TALLYFY__USERNAME", config.username),
            ("BRIDGE__TALLYFY__PASSWORD", config.password),
        ];
        let settings = started(Settings::load(config_dir, &overrides))?;
        let app = Application::build(settings.clone()).await?;
        announce(&settings, app.port(), &sandbox);
        app.run_until_stopped(shutdown_signal()).await?;
        sandbox.shutdown().await;
        Ok(())
    }

    /// Tells a person trying the bridge where to post and where to look.
    fn announce(settings: &Settings, port: u16, sandbox: &SandboxHandle) {
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

    /// The `sandbox` command: the fake Tallyfy alone, until a signal.
    pub async fn run_sandbox(addr: SocketAddr, config: &str) -> Result<(), Failure> {
        telemetry::init(&LogSettings {
            format: LogFormat::Pretty,
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
}
