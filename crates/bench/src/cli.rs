//! The command line: common options and one argument struct per scenario.
//!
//! Common options are `global`, so they may come before or after the
//! scenario name (`switchboard-bench fanout --subscribers 5 --json`).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for Switchboard's WebSocket services.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// Options every scenario understands.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options every scenario understands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Common options")]
pub struct CommonArgs {
    /// WebSocket URL of the channel (or the base of per-connection channels).
    #[arg(
        long,
        global = true,
        default_value = "ws://127.0.0.1:8199/pubsub/bench"
    )]
    pub url: String,

    /// Print one JSON object on stdout instead of text (and no progress).
    #[arg(long, global = true)]
    pub json: bool,

    /// Spread client sockets over source addresses 127.0.0.1 ..= 127.0.0.N
    /// (only when the target is IPv4 loopback).
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub sources: u8,

    /// Connection attempts (TCP connect plus handshake) in flight at once.
    #[arg(long, global = true, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub connect_concurrency: u64,

    /// Time allowed for one TCP connect plus WebSocket handshake, in seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Set SO_RCVBUF on client sockets to this many bytes (default: the
    /// kernel's autotuning).
    #[arg(long, global = true)]
    pub recv_buffer: Option<u32>,

    /// Runtime worker threads (default: the number of CPUs; 1 runs a
    /// single-threaded runtime).
    #[arg(long, global = true)]
    pub threads: Option<usize>,

    /// Hard limit on the whole run, in seconds; the run fails if it is hit.
    #[arg(long, global = true, default_value_t = 900.0)]
    pub timeout: f64,

    /// Also write the run's summary and command line to FILE, for a later
    /// `switchboard-bench compare FILE`.
    #[arg(long, global = true, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

impl CommonArgs {
    /// `--connect-timeout` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout)
    }

    /// `--timeout` as a duration.
    pub fn run_timeout(&self) -> Duration {
        secs(self.timeout)
    }

    /// `--connect-concurrency` as a count of tasks.
    pub fn connect_concurrency(&self) -> usize {
        usize::try_from(self.connect_concurrency).unwrap_or(usize::MAX)
    }
}

/// Seconds (negative and NaN become zero, huge values a day) as a duration.
pub fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.clamp(0.0, 86_400.0)).unwrap_or(Duration::ZERO)
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// One publisher, many subscribers of one channel: throughput, loss,
    /// order and publish-to-deliver latency.
    Fanout(FanoutArgs),
    /// Many idle subscribed connections: the server's memory per connection.
    Idle(IdleArgs),
    /// Connections opened and closed at a steady rate: handshake latency and
    /// errors.
    Churn(ChurnArgs),
    /// Pairs of registered users negotiating WebRTC calls through the rtc
    /// service: messages relayed per second and relay latency.
    Rtc(crate::scenario::rtc::RtcArgs),
    /// Short-lived two-member channels through the pairing service
    /// (channelserver): channels created per second, messages relayed per
    /// second and relay latency.
    Pairs(crate::scenario::pairs::PairsArgs),
    /// One meeting of many members chatting through the meetings service
    /// (pgeu-meetingserver): lines stored and delivered per second, latency.
    Meeting(crate::scenario::meeting::MeetingArgs),
    /// Many pubsub connections for a long time with churn, slow and silent clients:
    /// samples the server's RSS, descriptors, tasks and p99, reports slopes, and fails
    /// when descriptors or tasks do not return to baseline after the clients leave.
    Soak(crate::scenario::soak::SoakArgs),
    /// Reruns the command recorded in FILE (by `--record`) and reports every
    /// figure as a ratio to the recorded one, marking those worse by more
    /// than `--tolerance`. Options after `--` are added to the recorded ones
    /// and win over them (`compare base.json -- --url ws://…`). The exit
    /// status is the rerun's own.
    Compare(CompareArgs),
    /// Writes an SVG line chart of CSV rows `series,x,y` (for example a
    /// sweep's results) to `--out`; runs nothing.
    Plot(PlotArgs),
}

/// `plot` options.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The CSV file (`series,x,y` rows; a header row is skipped).
    pub csv: std::path::PathBuf,
    /// Where to write the SVG.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Title above the chart.
    #[arg(long, default_value = "")]
    pub title: String,
    /// Label of the x axis.
    #[arg(long, default_value = "")]
    pub x_label: String,
    /// Label of the y axis.
    #[arg(long, default_value = "")]
    pub y_label: String,
    /// A logarithmic x axis.
    #[arg(long)]
    pub log_x: bool,
}

/// `compare` options.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// A file written by `--record`.
    pub file: std::path::PathBuf,
    /// Mark figures worse than recorded by more than this fraction.
    #[arg(long, default_value_t = 0.2)]
    pub tolerance: f64,
    /// Options for the rerun, after `--` (they win over the recorded ones).
    #[arg(last = true)]
    pub overrides: Vec<String>,
}

/// How messages are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishMode {
    /// Over a WebSocket connection subscribed to the same channel.
    Ws,
    /// As HTTP POST requests on keep-alive connections.
    Post,
}

/// `fanout` options.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u64,
    /// Messages to publish.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub messages: u64,
    /// Bytes per message (at least 24).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(24..=16 * 1024 * 1024))]
    pub size: u64,
    /// Messages per second over all publishers (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// With --rate, publish in bursts of this many messages (sent back to
    /// back, bursts spaced to keep the rate), so the server can batch its
    /// writes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub burst: u64,
    /// How to publish.
    #[arg(long, value_enum, default_value_t = PublishMode::Ws)]
    pub publish: PublishMode,
    /// Keep-alive connections for `--publish post`; messages are dealt
    /// round-robin, each connection is its own ordered stream.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub post_connections: u64,
    /// After publishing, stop waiting once no subscriber received anything
    /// for this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// Spread the subscribers round-robin over these channel URLs (repeat for
    /// the nodes of a cluster; the publisher stays on --url). Default: --url.
    #[arg(long = "subscriber-url")]
    pub subscriber_urls: Vec<String>,
    /// Report the CPU time these processes use during the run (repeat:
    /// the nodes, the NATS server).
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<u32>,
    /// Also run the same fan-out against this bare broadcast server
    /// (`bare-broadcast`, the machine's ceiling), alternating with --url,
    /// and print pubsub's lossless rate as a share of the bare one.
    #[arg(long)]
    pub bare_url: Option<String>,
    /// With --bare-url: the bare server's process id(s), for its CPU time.
    #[arg(long = "bare-pid", requires = "bare_url")]
    pub bare_pids: Vec<u32>,
    /// With --bare-url: how many pairs of runs (pubsub and bare) to make.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
}

/// `idle` options.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connections to hold.
    #[arg(long, default_value_t = 15_000)]
    pub connections: u64,
    /// The server's process id, to read its VmRSS (without it only the
    /// bench's own memory is reported).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Channels to spread the connections over (connection i joins channel
    /// i mod C); with 1 the URL itself is the channel.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub channels: u64,
    /// Give every connection its own channel (same as --channels N).
    #[arg(long, conflicts_with = "channels")]
    pub distinct: bool,
    /// How to publish the one verification message per channel.
    #[arg(long, value_enum, default_value_t = PublishMode::Ws)]
    pub publish: PublishMode,
    /// Seconds to keep the connections open after measuring, then measure
    /// again.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Most connections one process holds; more are spread over child
    /// processes.
    #[arg(long, default_value_t = 18_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub per_process: u64,
    /// Seconds to wait for every connection to get its verification message.
    #[arg(long, default_value_t = 30.0)]
    pub verify_timeout: f64,
    /// Seconds to wait for the server's RSS to stop changing.
    #[arg(long, default_value_t = 30.0)]
    pub settle_timeout: f64,
    /// Internal: run as a child holding a share of the connections, driven
    /// over stdin/stdout.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Internal: global index of this worker's first connection.
    #[arg(long, hide = true, default_value_t = 0)]
    pub first_index: u64,
}

/// `churn` options.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// New connections per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds to keep opening connections.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Milliseconds each connection stays open after its echo.
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
    /// Skip the echo round trip: connect, hold, close.
    #[arg(long)]
    pub no_echo: bool,
    /// All connections join the URL's channel instead of one channel each.
    #[arg(long)]
    pub shared_channel: bool,
    /// Most connections open at once; a connection due while at the cap is
    /// skipped and counted.
    #[arg(long, default_value_t = 5_000)]
    pub max_inflight: u64,
    /// Seconds to wait for the echo.
    #[arg(long, default_value_t = 5.0)]
    pub echo_timeout: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "switchboard-bench",
            "fanout",
            "--subscribers",
            "5",
            "--json",
        ])
        .unwrap();
        assert!(cli.common.json);
        let Scenario::Fanout(args) = cli.scenario else {
            panic!("not fanout")
        };
        assert_eq!(
            (args.subscribers, args.messages, args.size),
            (5, 10_000, 64)
        );
        let cli =
            Cli::try_parse_from(["switchboard-bench", "--sources", "4", "idle", "--distinct"])
                .unwrap();
        assert_eq!(cli.common.sources, 4);
        assert!(Cli::try_parse_from(["switchboard-bench", "fanout", "--size", "10"]).is_err());
        assert!(
            Cli::try_parse_from(["switchboard-bench", "idle", "--distinct", "--channels", "3"])
                .is_err()
        );
    }

    #[test]
    fn seconds_are_clamped() {
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert_eq!(secs(-3.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
    }
}
