//! The `switchboard` binary: parse the command line, load the configuration,
//! set up logging and signals, and run.
//!
//! Output never blocks or panics the process: the banner and log lines go
//! through non-blocking sinks (see `logging`), and messages printed before
//! logging starts ignore write errors, so a closed stdout or stderr pipe
//! cannot stop SIGTERM from shutting the server down.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::app::ListenerHints;
use switchboard::config::{Flags, print};
use switchboard::logging::Logging;
use switchboard::persona::{
    channelserver, goflag::FlagError, meetingserver, pinghub, signal_server, spreed,
};
use switchboard::reload::Reloader;
use switchboard::{App, Config};

/// jemalloc keeps each size class in its own slabs and writes no headers next to
/// allocations, so the untouched part of a connection's read buffer stays out of
/// RSS (glibc's heap touches a page per connection there; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Switchboard: one realtime WebSocket relay for several protocols.
///
/// Without a command it runs `serve`, taking `serve`'s flags
/// (`switchboard --config switchboard.toml`).
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every enabled service (the default).
    Serve(ServeArgs),
    /// Check or print the configuration without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run as a drop-in for Pinghub (Go-style flags: -addr, -origin, -mport, -log).
    #[command(disable_help_flag = true)]
    Pinghub {
        /// Pinghub's flags, as Pinghub takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run as a drop-in for webrtc-signal-server: its paths at the root, on 0.0.0.0:8000.
    SignalServer(SignalServerCli),
    /// Run as a drop-in for pgeu-meetingserver (Go-style flags: -origin, -behindproxy, -dburl, -listen, -profilelisten).
    #[command(disable_help_flag = true)]
    Meetingserver {
        /// pgeu-meetingserver's flags, as it takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run as a drop-in for nextcloud-spreed-signaling (reads its server.conf; first slice, see docs/talk.md).
    #[command(name = "signaling", alias = "nextcloud-spreed-signaling")]
    Signaling {
        /// The original's INI configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Ops listener for /metrics and /healthz (host:port); off unless given.
        #[arg(long)]
        ops_listen: Option<String>,
    },
    /// Run as a drop-in for Mozilla's channelserver (PAIR_* environment, config/$RUN_MODE, MozLog on stdout).
    #[command(disable_help_flag = true)]
    Channelserver {
        /// `--key=value` settings (also read as PAIR_<KEY> from the environment).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl Command {
    /// A drop-in for an original (its settings come from its own flags, plus
    /// the cluster's `SWITCHBOARD_CLUSTER_*` variables).
    fn is_persona(&self) -> bool {
        matches!(
            self,
            Command::Pinghub { .. }
                | Command::SignalServer(_)
                | Command::Meetingserver { .. }
                | Command::Channelserver { .. }
                | Command::Signaling { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate FILE (with the environment and flags, as `serve` would) and
    /// print what would be served; exit status 2 on an error.
    Check(CheckArgs),
    /// Print the effective configuration, every default included, each value
    /// marked with where it came from (default, file, environment, flag);
    /// secrets redacted. `switchboard config print > switchboard.toml` starts a file.
    Print(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The TOML configuration file to check.
    file: PathBuf,
    #[command(flatten)]
    flags: FlagArgs,
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
    /// Reverse proxies (addresses or CIDRs, comma-separated or repeated) whose
    /// X-Forwarded-For is believed, e.g. 127.0.0.1 for an nginx on this host.
    /// Without it, behind a local proxy every client looks like loopback.
    #[arg(long, value_delimiter = ',')]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see switchboard.example.toml, or `switchboard config print`).
    #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: FlagArgs,
}

#[derive(Debug, Default, clap::Args)]
struct FlagArgs {
    /// Listen address (host:port or /unix/socket/path); repeatable; replaces server.listen.
    #[arg(long)]
    listen: Vec<String>,
    /// Ops listener for /metrics and /healthz (host:port), or `off`; replaces ops.listen.
    #[arg(long)]
    ops_listen: Option<String>,
}

impl FlagArgs {
    fn flags(&self) -> Flags {
        Flags {
            listen: self.listen.clone(),
            ops_listen: self.ops_listen.clone(),
        }
    }
}

/// Writes a message to stderr; a closed stderr is not an error worth dying for.
fn report(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Writes text to stdout, ignoring a closed pipe.
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// What `main` runs.
struct Launch {
    config: Config,
    /// Logged once logging is up.
    warnings: Vec<String>,
    /// The program name in MozLog lines; `Some` for a persona whose banner is logged.
    persona: Option<&'static str>,
    hints: ListenerHints,
}

/// The configuration for `cli`, or the exit code when there is nothing to run.
fn load(cli: Cli) -> Result<Launch, ExitCode> {
    let persona = cli.command.as_ref().is_some_and(Command::is_persona);
    let launch = load_command(cli)?;
    if !persona {
        return Ok(launch);
    }
    match launch.config.clone().with_cluster_env(std::env::vars()) {
        Ok(config) => Ok(Launch { config, ..launch }),
        Err(e) => {
            report(&format!("switchboard: {e}"));
            Err(ExitCode::from(2))
        }
    }
}

/// [`load`] before a persona's `SWITCHBOARD_CLUSTER_*` variables.
fn load_command(cli: Cli) -> Result<Launch, ExitCode> {
    let native = |config| Launch {
        config,
        warnings: Vec::new(),
        persona: None,
        hints: ListenerHints::default(),
    };
    match cli.command {
        Some(Command::Channelserver { args }) => {
            let dir = std::env::current_dir().unwrap_or_default();
            match channelserver::config(&args, std::env::vars(), &dir) {
                Ok(launch) => Ok(Launch {
                    config: launch.config,
                    warnings: launch.warnings,
                    persona: Some("channelserver"),
                    hints: ListenerHints {
                        listen: "move it with PAIR_HOSTNAME and PAIR_PORT (or --hostname, --port)"
                            .into(),
                        ops: "this is the metrics and health listener: move it with \
                              SWITCHBOARD_OPS_LISTEN=HOST:PORT, or leave that variable unset (or off)"
                            .into(),
                    },
                }),
                Err(channelserver::PersonaError::Help) => {
                    report(channelserver::USAGE.trim_end());
                    Err(ExitCode::SUCCESS)
                }
                Err(e) => {
                    report(&format!("switchboard channelserver: {e}"));
                    Err(ExitCode::from(2))
                }
            }
        }
        Some(Command::Pinghub { args }) => match pinghub::config(&args) {
            Ok(c) => Ok(Launch {
                warnings: c.warnings("-origin"),
                config: c,
                persona: None,
                hints: ListenerHints {
                    listen: "move it with -addr HOST:PORT (or -addr /path/to/socket)".into(),
                    ops: "this is the metrics listener: move it with -mport PORT".into(),
                },
            }),
            Err(pinghub::PersonaError::Flag(FlagError::Help)) => {
                report(pinghub::USAGE.trim_end());
                Err(ExitCode::SUCCESS)
            }
            Err(e) => {
                report(&format!("{e}\n{}", pinghub::USAGE.trim_end()));
                Err(ExitCode::from(2))
            }
        },
        Some(Command::Meetingserver { args }) => match meetingserver::config(&args) {
            Ok(config) => Ok(Launch {
                hints: ListenerHints {
                    listen: "move it with -listen HOST:PORT (or -listen /path/to/socket)".into(),
                    ops: "this is the profile listener: move it with -profilelisten HOST:PORT"
                        .into(),
                },
                ..native(config)
            }),
            Err(meetingserver::PersonaError::Flag(FlagError::Help)) => {
                report(meetingserver::USAGE.trim_end());
                Err(ExitCode::SUCCESS)
            }
            Err(meetingserver::PersonaError::MissingOrigin) => {
                // As the original: the message and the usage, then exit 0.
                report(&format!(
                    "{}\n{}",
                    meetingserver::MISSING_ORIGIN,
                    meetingserver::USAGE.trim_end()
                ));
                Err(ExitCode::SUCCESS)
            }
            Err(e) => {
                report(&format!("{e}\n{}", meetingserver::USAGE.trim_end()));
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
                trusted_proxies: a.trusted_proxies,
            };
            match signal_server::config(&args) {
                Ok(config) => Ok(Launch {
                    hints: ListenerHints {
                        listen: "move it with --listen HOST:PORT".into(),
                        ops: ListenerHints::default().ops,
                    },
                    ..native(config)
                }),
                Err(e) => {
                    report(&format!("switchboard signal-server: {e}"));
                    Err(ExitCode::from(2))
                }
            }
        }
        Some(Command::Signaling { config, ops_listen }) => {
            match spreed::config(&config, &|v| std::env::var(v).ok()).and_then(|(mut c, w)| {
                if let Some(addr) = ops_listen {
                    c.ops.enabled = true;
                    c.ops.listen = addr;
                    c.validate()?;
                }
                Ok((c, w))
            }) {
                Ok((config, warnings)) => Ok(Launch {
                    warnings,
                    hints: ListenerHints {
                        listen: "move it with [http] listen in the configuration file".into(),
                        ops: "this is the metrics and health listener: move it with --ops-listen HOST:PORT"
                            .into(),
                    },
                    ..native(config)
                }),
                Err(e) => {
                    report(&format!("switchboard signaling: {e}"));
                    Err(ExitCode::from(2))
                }
            }
        }
        Some(Command::Config(ConfigCommand::Check(a))) => Err(check(&a)),
        Some(Command::Config(ConfigCommand::Print(a))) => Err(print_config(&a)),
        Some(Command::Serve(a)) => serve_config(&a).map(native),
        None => serve_config(&cli.serve).map(native),
    }
}

fn serve_config(a: &ServeArgs) -> Result<Config, ExitCode> {
    Config::load_traced(a.config.as_deref(), std::env::vars(), &a.flags.flags())
        .map(|(c, _)| c)
        .map_err(|e| {
            report(&format!("switchboard: {e}"));
            ExitCode::from(2)
        })
}

/// `switchboard config check FILE`.
fn check(a: &CheckArgs) -> ExitCode {
    let shown = a.file.display();
    let cfg = match Config::load_traced(Some(&a.file), std::env::vars(), &a.flags.flags()) {
        Ok((c, _)) => c,
        Err(e) => {
            report(&format!("switchboard config check: {e}"));
            return ExitCode::from(2);
        }
    };
    let tls = !cfg.server.tls_cert.is_empty();
    if tls
        && let Err(e) = switchboard_edge::tls::Tls::load(
            std::path::Path::new(&cfg.server.tls_cert),
            std::path::Path::new(&cfg.server.tls_key),
        )
    {
        report(&format!("{shown}: server.tls_cert / server.tls_key: {e}"));
        return ExitCode::from(2);
    }
    let mut text = format!("{shown}: ok\n");
    for l in &cfg.server.listen {
        let base = if l.starts_with('/') {
            format!("unix:{l}")
        } else {
            format!("{}://{l}", if tls { "https" } else { "http" })
        };
        text.push_str(&format!("would listen on {base}\n"));
        for (name, url) in switchboard::app::service_urls(&cfg, &base) {
            text.push_str(&format!("  {name:<8} {url}\n"));
        }
    }
    if cfg.ops.enabled {
        text.push_str(&format!(
            "would serve ops on http://{}/metrics and /healthz\n",
            cfg.ops.listen
        ));
    } else {
        text.push_str("ops listener off\n");
    }
    if cfg.rtc.enabled {
        text.push_str(&format!("store: {}\n", redacted_store_url(&cfg)));
    }
    out(&text);
    ExitCode::SUCCESS
}

fn redacted_store_url(cfg: &Config) -> String {
    let url = cfg.store.resolved_url();
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url,
    }
}

/// `switchboard config print`.
fn print_config(a: &ServeArgs) -> ExitCode {
    match Config::load_traced(a.config.as_deref(), std::env::vars(), &a.flags.flags())
        .and_then(|(c, p)| print::render(&c, &p))
    {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&format!("switchboard: {e}"));
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let launch = match load(cli) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let logging = match switchboard::logging::init(
        &launch.config.log,
        launch.persona.unwrap_or("switchboard"),
    ) {
        Ok(l) => l,
        Err(e) => {
            report(&format!("switchboard: {e}"));
            return ExitCode::from(2);
        }
    };
    for w in &launch.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            logging.flush();
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(serve(launch, &logging));
    logging.flush();
    code
}

async fn serve(launch: Launch, logging: &Logging) -> ExitCode {
    let Launch {
        config: cfg,
        persona,
        hints,
        ..
    } = launch;
    switchboard::ops::recorder();
    // Start-up errors go to stderr; into the log file as well when there is one.
    let log_to_file = !cfg.log.file.is_empty();
    let fail = |e: &dyn std::fmt::Display| {
        if log_to_file {
            tracing::error!("{e}");
        }
        report(&format!("switchboard: {e}"));
        ExitCode::FAILURE
    };
    // Everything that can fail on the configuration (store, certificates) before anything listens.
    let shutdown = CancellationToken::new();
    let app = match App::new(cfg, shutdown.clone()).await {
        Ok(app) => app,
        Err(e) => return fail(&e),
    };
    let (listeners, ops) = match switchboard::app::bind_named(&app.config, &hints).await {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let tls = app.tls.is_some();
    if persona.is_some() {
        // A persona's stdout carries its log format only: the banner becomes log lines.
        for l in &listeners {
            tracing::info!("Starting server: listening on {}/", l.url_with(tls));
        }
        if let Some(o) = &ops {
            tracing::info!("Starting ops server: {}/metrics and /healthz", o.url());
        }
    } else {
        // The banner is the program's output, read by people and by tests to find the port.
        let mut banner = String::new();
        for l in &listeners {
            let url = l.url_with(tls);
            banner.push_str(&format!("switchboard: listening on {url}\n"));
            for (name, url) in app.service_urls(&url) {
                banner.push_str(&format!("  {name:<8} {url}\n"));
            }
        }
        if let Some(o) = &ops {
            banner.push_str(&format!(
                "switchboard: ops on {}/metrics and /healthz\n",
                o.url()
            ));
        }
        logging.banner(&banner);
    }
    tokio::spawn(signals(shutdown, app.reloader.clone()));
    switchboard::run(app, listeners, ops).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Cancels `shutdown` on SIGTERM or SIGINT; reloads everything reloadable on SIGHUP.
async fn signals(shutdown: CancellationToken, reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM"); break; }
            _ = int.recv() => { tracing::info!("SIGINT"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                // Reading files may block briefly: keep it off the runtime's workers.
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload_all()).await;
            }
        }
    }
    shutdown.cancel();
}
