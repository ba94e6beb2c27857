//! The `switchboard` binary: parse the command line, load the configuration,
//! set up logging and signals, and run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::persona::{channelserver, goflag::FlagError, pinghub, signal_server};
use switchboard::{App, Config};

/// Switchboard: one realtime WebSocket relay for several protocols.
/// jemalloc keeps each size class in its own slabs and writes no headers next to
/// allocations, so the untouched part of a connection's read buffer stays out of
/// RSS (glibc's heap touches a page per connection there; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every enabled service (the default).
    Serve(ServeArgs),
    /// Run as a drop-in for Pinghub (Go-style flags: -addr, -origin, -mport, -log).
    #[command(disable_help_flag = true)]
    Pinghub {
        /// Pinghub's flags, as Pinghub takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run as a drop-in for webrtc-signal-server: its paths at the root, on 0.0.0.0:8000.
    SignalServer(SignalServerCli),
    /// Run as a drop-in for Mozilla's channelserver (PAIR_* environment, config/$RUN_MODE, MozLog on stdout).
    #[command(disable_help_flag = true)]
    Channelserver {
        /// `--key=value` settings (also read as PAIR_<KEY> from the environment).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct SignalServerCli {
    /// Listen address (host:port or /unix/socket/path); repeatable. Default 0.0.0.0:8000, as the original.
    #[arg(long)]
    listen: Vec<String>,
    /// Where registered names are kept: sqlite:PATH, a path, or postgres://… (default ./switchboard.sqlite3).
    #[arg(long, env = "SWITCHBOARD_STORE_URL")]
    store: Option<String>,
    /// Sign identity cookies with this secret (HMAC-SHA256, at least 16 bytes). Default: unsigned, as the original.
    #[arg(long, env = "SWITCHBOARD_RTC_COOKIE_SECRET", hide_env_values = true)]
    cookie_secret: Option<String>,
    /// Token that authorizes /v1/kick-active-users from other hosts (at least 16 bytes).
    #[arg(long, env = "SWITCHBOARD_RTC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Ops listener for /metrics and /healthz, or `off` (default 127.0.0.1:8198).
    #[arg(long)]
    ops_listen: Option<String>,
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see switchboard.example.toml).
    #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (host:port or /unix/socket/path); repeatable; replaces server.listen.
    #[arg(long)]
    listen: Vec<String>,
    /// Ops listener for /metrics and /healthz; replaces ops.listen.
    #[arg(long)]
    ops_listen: Option<String>,
}

/// The configuration for `cli`; `warnings` receives what to log once logging is up.
fn load(cli: Cli, warnings: &mut Vec<String>) -> Result<Config, ExitCode> {
    match cli.command {
        Some(Command::Channelserver { args }) => {
            let dir = std::env::current_dir().unwrap_or_default();
            match channelserver::config(&args, std::env::vars(), &dir) {
                Ok(launch) => {
                    warnings.extend(launch.warnings);
                    Ok(launch.config)
                }
                Err(channelserver::PersonaError::Help) => {
                    eprint!("{}", channelserver::USAGE);
                    Err(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("switchboard channelserver: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Some(Command::Pinghub { args }) => match pinghub::config(&args) {
            Ok(c) => Ok(c),
            Err(pinghub::PersonaError::Flag(FlagError::Help)) => {
                eprint!("{}", pinghub::USAGE);
                Err(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                eprint!("{}", pinghub::USAGE);
                Err(ExitCode::from(2))
            }
        },
        Some(Command::SignalServer(a)) => {
            let args = signal_server::SignalServerArgs {
                listen: a.listen,
                store: a.store,
                cookie_secret: a.cookie_secret,
                admin_token: a.admin_token,
                ops_listen: a.ops_listen,
            };
            signal_server::config(&args).map_err(|e| {
                eprintln!("switchboard: {e}");
                ExitCode::from(2)
            })
        }
        Some(Command::Serve(a)) => serve_config(a),
        None => serve_config(ServeArgs::default()),
    }
}

fn serve_config(a: ServeArgs) -> Result<Config, ExitCode> {
    let mut cfg = Config::load(a.config.as_deref(), std::env::vars()).map_err(|e| {
        eprintln!("switchboard: {e}");
        ExitCode::from(2)
    })?;
    if !a.listen.is_empty() {
        cfg.server.listen = a.listen;
    }
    if let Some(o) = a.ops_listen {
        cfg.ops.listen = o;
    }
    cfg.validate().map_err(|e| {
        eprintln!("switchboard: {e}");
        ExitCode::from(2)
    })?;
    Ok(cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The channelserver persona speaks as "channelserver" in its MozLog lines and logs its banner.
    let persona = match cli.command {
        Some(Command::Channelserver { .. }) => Some("channelserver"),
        _ => None,
    };
    let mut warnings = Vec::new();
    let cfg = match load(cli, &mut warnings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = switchboard::logging::init_as(&cfg.log, persona.unwrap_or("switchboard")) {
        eprintln!("switchboard: {e}");
        return ExitCode::from(2);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        switchboard::ops::recorder();
        let (listeners, ops) = match switchboard::app::bind(&cfg).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        let app = match App::new(cfg, shutdown.clone()).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut banner = String::new();
        for l in &listeners {
            banner.push_str(&format!("switchboard: listening on {}\n", l.url()));
            for (name, url) in app.service_urls(&l.url()) {
                banner.push_str(&format!("  {name:<8} {url}\n"));
            }
        }
        if let Some(o) = &ops {
            banner.push_str(&format!(
                "switchboard: ops on {}/metrics and /healthz\n",
                o.url()
            ));
        }
        if persona.is_some() {
            // A persona's stdout carries its log format only: the banner becomes log lines.
            for l in &listeners {
                tracing::info!("Starting server: listening on {}/", l.url());
            }
            if let Some(o) = &ops {
                tracing::info!("Starting ops server: {}/metrics and /healthz", o.url());
            }
        } else {
            // The banner is the program's output, read by people and by tests to find the port.
            #[allow(clippy::print_stdout)]
            {
                print!("{banner}");
            }
        }
        tokio::spawn(signals(shutdown));
        switchboard::run(app, listeners, ops).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    shutdown.cancel();
}
