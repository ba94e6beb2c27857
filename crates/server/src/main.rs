//! The `switchboard` binary: parse the command line, load the configuration,
//! set up logging and signals, and run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::persona::{goflag::FlagError, pinghub};
use switchboard::{App, Config};

/// Switchboard: one realtime WebSocket relay for several protocols.
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

fn load(cli: Cli) -> Result<Config, ExitCode> {
    match cli.command {
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
    let cfg = match load(Cli::parse()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = switchboard::logging::init(&cfg.log) {
        eprintln!("switchboard: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
        let app = App::new(cfg, shutdown.clone());
        let mut banner = String::new();
        for l in &listeners {
            banner.push_str(&format!("switchboard: listening on {}\n", l.url()));
            for (name, url) in app.service_urls(&l.url()) {
                banner.push_str(&format!("  {name:<8} {url}\n"));
            }
        }
        if let Some(o) = &ops {
            banner.push_str(&format!("switchboard: ops on {}/metrics and /healthz\n", o.url()));
        }
        // The banner is the program's output, read by people and by tests to find the port.
        #[allow(clippy::print_stdout)]
        {
            print!("{banner}");
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
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    shutdown.cancel();
}
