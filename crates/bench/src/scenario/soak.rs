//! `soak`: hold a population of pubsub connections for a long time with churn, and watch
//! the server for leaks.
//!
//! `--connections` slots each run one client after another for the whole `--duration`:
//! connect to channel `soak-<slot mod channels>`, live for an exponentially distributed
//! time (mean `connections / churn-rate` seconds, so about `--churn-rate` clients are
//! replaced every second), then leave by a Close or (`--abrupt-percent`) by dropping the
//! TCP connection. Slots have fixed roles: most read everything, `--slow-percent` read one
//! message every `--slow-pause` seconds, `--silent-percent` never read (nor answer pings),
//! so the server's slow-consumer and keepalive endings run all along. `--publish-rate`
//! messages a second are POSTed round-robin over the channels, each stamped with its send
//! time, and readers record the delivery latency.
//!
//! Every `--sample-interval` seconds the bench samples the server's RSS and open
//! descriptors (from `/proc/PID`, so the server must run on this machine), the tokio task
//! count (`switchboard_runtime_alive_tasks` from `--metrics-url`), and the interval's p99
//! latency. The report gives each series' least-squares slope over the steady phase
//! (after the ramp-up). After the run every client leaves and the bench waits up to
//! `--settle-timeout` for descriptors and tasks to come back to what they were before the
//! first client: a value that does not is a leak, and fails the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;

use super::{Ctx, End, ScenarioError, close_politely};
use crate::cli::secs;
use crate::http::PostConn;
use crate::net::WsConn;
use crate::payload::{self, Stamp};
use crate::procfs;
use crate::progress::Progress;
use crate::report::{Lines, Summary, fmt_tally};
use crate::stats::{Latency, Tally};

/// `soak` options.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Connections held at once.
    #[arg(long, default_value_t = 19_000)]
    pub connections: u64,
    /// Seconds to run (after the ramp-up starts).
    #[arg(long, default_value_t = 1800.0)]
    pub duration: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    pub sample_interval: f64,
    /// Channels the connections are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub channels: u64,
    /// Clients replaced per second (0: every client stays for the whole run).
    #[arg(long, default_value_t = 50.0)]
    pub churn_rate: f64,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp_rate: f64,
    /// Messages POSTed per second over all channels.
    #[arg(long, default_value_t = 50.0)]
    pub publish_rate: f64,
    /// Bytes per message (at least 24).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(24..=1024 * 1024))]
    pub size: u64,
    /// Keep-alive POST connections for publishing.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub publishers: u64,
    /// Percent of slots that read slowly.
    #[arg(long, default_value_t = 2)]
    pub slow_percent: u8,
    /// Seconds a slow reader pauses after each message.
    #[arg(long, default_value_t = 5.0)]
    pub slow_pause: f64,
    /// Percent of slots that never read (nor answer pings).
    #[arg(long, default_value_t = 2)]
    pub silent_percent: u8,
    /// Percent of leaving clients that drop TCP instead of closing.
    #[arg(long, default_value_t = 10)]
    pub abrupt_percent: u8,
    /// The server's process id (for RSS and open descriptors).
    #[arg(long)]
    pub server_pid: u32,
    /// The server's Prometheus endpoint, for the task count.
    #[arg(long, default_value = "http://127.0.0.1:8198/metrics")]
    pub metrics_url: String,
    /// Seconds to wait after the run for descriptors and tasks to return to baseline.
    #[arg(long, default_value_t = 60.0)]
    pub settle_timeout: f64,
    /// Descriptors above the baseline still counted as returned.
    #[arg(long, default_value_t = 8)]
    pub fd_slack: u64,
    /// Tasks above the baseline still counted as returned.
    #[arg(long, default_value_t = 8)]
    pub task_slack: u64,
}

/// One sample of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_secs: f64,
    /// Client connections open (bench side).
    pub clients: u64,
    /// Server resident memory in bytes.
    pub rss_bytes: u64,
    /// Server open file descriptors.
    pub fds: u64,
    /// Server tokio tasks alive (`None`: the metrics endpoint did not answer).
    pub tasks: Option<u64>,
    /// p99 delivery latency in this interval, microseconds (`None`: nothing delivered).
    pub p99_us: Option<u64>,
    /// Messages delivered in this interval.
    pub delivered: u64,
    /// Connections made in this interval.
    pub connects: u64,
}

/// Least-squares slopes per minute over the steady phase.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Slopes {
    /// Samples the slopes are fitted to.
    pub samples: usize,
    /// RSS, bytes per minute.
    pub rss_bytes_per_min: f64,
    /// Open descriptors per minute.
    pub fds_per_min: f64,
    /// Tasks per minute.
    pub tasks_per_min: f64,
    /// p99 latency, microseconds per minute.
    pub p99_us_per_min: f64,
}

/// Before the first client and after the last.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Baseline {
    /// Open descriptors.
    pub fds: u64,
    /// Tasks alive (`None`: no metrics).
    pub tasks: Option<u64>,
    /// RSS in bytes.
    pub rss_bytes: u64,
}

/// The result of a `soak` run.
#[derive(Debug, Serialize)]
pub struct SoakSummary {
    /// Connections held at once (target).
    pub connections: u64,
    /// Seconds run.
    pub duration_secs: f64,
    /// Seconds until the population was first complete.
    pub ramp_secs: f64,
    /// Connections made over the run.
    pub connects: u64,
    /// Failed connection attempts by kind.
    pub connect_errors: Tally,
    /// How clients' connections ended, by the server's close code or `eof`.
    pub server_endings: Tally,
    /// Clients that left by Close / by dropping TCP.
    pub left_closed: u64,
    /// Clients that left by dropping TCP.
    pub left_abrupt: u64,
    /// Messages published / failed to publish.
    pub published: u64,
    /// POSTs that failed.
    pub publish_errors: u64,
    /// Messages delivered to readers.
    pub delivered: u64,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// Slopes over the steady phase.
    pub slopes: Slopes,
    /// Before the first client.
    pub before: Baseline,
    /// After the last client left and the server settled (or the settle timeout).
    pub after: Baseline,
    /// Seconds the server took to come back to baseline.
    pub settle_secs: f64,
    /// What did not come back.
    pub leaks: Vec<String>,
}

impl Summary for SoakSummary {
    fn scenario(&self) -> &'static str {
        "soak"
    }

    fn failures(&self) -> Vec<String> {
        let mut f = self.leaks.clone();
        if self.samples.is_empty() {
            f.push("no sample taken".to_owned());
        }
        f
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "target",
            format!(
                "{} connections for {:.0} s (ramp {:.1} s)",
                self.connections, self.duration_secs, self.ramp_secs
            ),
        );
        out.kv(
            "clients",
            format!(
                "{} connects, {} left by Close, {} dropped TCP",
                self.connects, self.left_closed, self.left_abrupt
            ),
        );
        out.kv("connect errors", fmt_tally(&self.connect_errors));
        out.kv("server endings", fmt_tally(&self.server_endings));
        out.kv(
            "messages",
            format!(
                "{} published ({} failed), {} delivered",
                self.published, self.publish_errors, self.delivered
            ),
        );
        out.kv(
            "samples",
            "t(s)  clients  rss(MiB)  fds  tasks  p99(ms)  delivered  connects",
        );
        for s in &self.samples {
            out.kv(
                "",
                format!(
                    "{:>5.0} {:>8} {:>9.1} {:>6} {:>6} {:>8} {:>10} {:>9}",
                    s.t_secs,
                    s.clients,
                    s.rss_bytes as f64 / 1048576.0,
                    s.fds,
                    s.tasks.map_or("-".into(), |t| t.to_string()),
                    s.p99_us
                        .map_or("-".into(), |p| format!("{:.1}", p as f64 / 1000.0)),
                    s.delivered,
                    s.connects
                ),
            );
        }
        let sl = &self.slopes;
        out.kv(
            "slopes/min",
            format!(
                "rss {:+.2} MiB, fds {:+.1}, tasks {:+.1}, p99 {:+.2} ms ({} samples)",
                sl.rss_bytes_per_min / 1048576.0,
                sl.fds_per_min,
                sl.tasks_per_min,
                sl.p99_us_per_min / 1000.0,
                sl.samples
            ),
        );
        let tasks = |t: Option<u64>| t.map_or("-".into(), |t| t.to_string());
        out.kv(
            "before / after",
            format!(
                "fds {} / {}, tasks {} / {}, rss {:.1} / {:.1} MiB (settled in {:.1} s)",
                self.before.fds,
                self.after.fds,
                tasks(self.before.tasks),
                tasks(self.after.tasks),
                self.before.rss_bytes as f64 / 1048576.0,
                self.after.rss_bytes as f64 / 1048576.0,
                self.settle_secs
            ),
        );
        if !self.leaks.is_empty() {
            out.kv("leaks", self.leaks.join("; "));
        }
    }
}

/// What every client task shares.
#[derive(Debug)]
struct Shared {
    open: AtomicU64,
    connects: AtomicU64,
    delivered: AtomicU64,
    left_closed: AtomicU64,
    left_abrupt: AtomicU64,
    published: AtomicU64,
    publish_errors: AtomicU64,
    window: Mutex<Latency>,
    connect_errors: Mutex<Tally>,
    endings: Mutex<Tally>,
}

impl Shared {
    fn new() -> Self {
        Self {
            open: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            left_closed: AtomicU64::new(0),
            left_abrupt: AtomicU64::new(0),
            published: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            window: Mutex::new(Latency::compact()),
            connect_errors: Mutex::new(Tally::default()),
            endings: Mutex::new(Tally::default()),
        }
    }

    fn tally(tally: &Mutex<Tally>, label: String) {
        tally.lock().unwrap_or_else(|e| e.into_inner()).add(label);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Reader,
    Slow,
    Silent,
}

/// A small xorshift generator per slot (the bench needs spread, not quality).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponentially distributed duration with this mean.
    fn exp(&mut self, mean: f64) -> Duration {
        let u = self.next_f64().max(1e-12);
        secs(-mean * u.ln())
    }
}

/// Runs the `soak` scenario.
pub async fn run(ctx: &Ctx, args: &SoakArgs) -> Result<SoakSummary, ScenarioError> {
    if args.connections == 0 || args.ramp_rate <= 0.0 || args.sample_interval <= 0.0 {
        return Err(ScenarioError::Args(
            "--connections, --ramp-rate and --sample-interval must be positive".into(),
        ));
    }
    if u64::from(args.slow_percent) + u64::from(args.silent_percent) > 100 {
        return Err(ScenarioError::Args(
            "--slow-percent plus --silent-percent exceed 100".into(),
        ));
    }
    let metrics = MetricsUrl::parse(&args.metrics_url)?;
    let before = Baseline {
        fds: open_fds(args.server_pid)?,
        tasks: metrics.tasks().await,
        rss_bytes: procfs::rss_bytes(args.server_pid).await?,
    };
    let progress = ctx.progress.clone();
    progress.set_phase("soak");
    let shared = Arc::new(Shared::new());
    let start = Instant::now();
    let end = start + secs(args.duration);
    let lifetime_mean = if args.churn_rate > 0.0 {
        args.connections as f64 / args.churn_rate
    } else {
        f64::INFINITY
    };

    let mut clients = JoinSet::new();
    for slot in 0..args.connections {
        let role = match (slot % 100) as u8 {
            p if p < args.slow_percent => Role::Slow,
            p if p < args.slow_percent + args.silent_percent => Role::Silent,
            _ => Role::Reader,
        };
        let uri = ctx
            .target
            .channel(&format!("soak-{}", slot % args.channels))?;
        let first = start + Duration::from_secs_f64(slot as f64 / args.ramp_rate);
        clients.spawn(client(
            ctx.dialer.clone(),
            uri,
            slot,
            role,
            Timing {
                first,
                end,
                lifetime_mean,
                slow_pause: secs(args.slow_pause),
                abrupt: f64::from(args.abrupt_percent) / 100.0,
            },
            shared.clone(),
            progress.clone(),
        ));
    }
    let publisher = tokio::spawn(publish(
        ctx.dialer.clone(),
        ctx.target.authority().to_owned(),
        ctx.target.uri().path().trim_end_matches('/').to_owned(),
        args.clone(),
        end,
        shared.clone(),
        progress.clone(),
    ));

    // Sample until the end.
    let interval = secs(args.sample_interval);
    let mut samples = Vec::new();
    let mut ramp_secs = None;
    let (mut last_delivered, mut last_connects) = (0, 0);
    let mut next = start + interval;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let window = std::mem::replace(
            &mut *shared.window.lock().unwrap_or_else(|e| e.into_inner()),
            Latency::compact(),
        );
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let connects = shared.connects.load(Ordering::Relaxed);
        let clients_open = shared.open.load(Ordering::Relaxed);
        let t = start.elapsed().as_secs_f64();
        if ramp_secs.is_none() && clients_open >= args.connections * 99 / 100 {
            ramp_secs = Some(t);
        }
        samples.push(Sample {
            t_secs: t,
            clients: clients_open,
            rss_bytes: procfs::rss_bytes(args.server_pid).await?,
            fds: open_fds(args.server_pid)?,
            tasks: metrics.tasks().await,
            p99_us: (window.count() > 0).then(|| window.summary().p99_us),
            delivered: delivered - last_delivered,
            connects: connects - last_connects,
        });
        (last_delivered, last_connects) = (delivered, connects);
    }

    // Everyone leaves; then the server must come back to where it started.
    progress.set_phase("leave");
    let _ = publisher.await;
    while clients.join_next().await.is_some() {}
    progress.set_phase("settle");
    let settle_start = Instant::now();
    let settle_end = settle_start + secs(args.settle_timeout);
    let returned = |after: &Baseline| {
        after.fds <= before.fds + args.fd_slack
            && match (before.tasks, after.tasks) {
                (Some(b), Some(a)) => a <= b + args.task_slack,
                _ => true,
            }
    };
    let mut after;
    loop {
        after = Baseline {
            fds: open_fds(args.server_pid)?,
            tasks: metrics.tasks().await,
            rss_bytes: procfs::rss_bytes(args.server_pid).await?,
        };
        if returned(&after) || Instant::now() >= settle_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut leaks = Vec::new();
    if after.fds > before.fds + args.fd_slack {
        leaks.push(format!(
            "open descriptors {} after, {} before (slack {})",
            after.fds, before.fds, args.fd_slack
        ));
    }
    if let (Some(b), Some(a)) = (before.tasks, after.tasks)
        && a > b + args.task_slack
    {
        leaks.push(format!(
            "tasks {a} after, {b} before (slack {})",
            args.task_slack
        ));
    }

    let ramp_secs = ramp_secs.unwrap_or(args.duration);
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_secs > ramp_secs + args.sample_interval)
        .collect();
    let slopes = slopes(&steady);
    let take = |t: &Mutex<Tally>| std::mem::take(&mut *t.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(SoakSummary {
        connections: args.connections,
        duration_secs: args.duration,
        ramp_secs,
        connects: shared.connects.load(Ordering::Relaxed),
        connect_errors: take(&shared.connect_errors),
        server_endings: take(&shared.endings),
        left_closed: shared.left_closed.load(Ordering::Relaxed),
        left_abrupt: shared.left_abrupt.load(Ordering::Relaxed),
        published: shared.published.load(Ordering::Relaxed),
        publish_errors: shared.publish_errors.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        samples,
        slopes,
        before,
        after,
        settle_secs: settle_start.elapsed().as_secs_f64(),
        leaks,
    })
}

/// Least-squares slope of `y` against `x`, per unit of `x`.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

fn slopes(steady: &[&Sample]) -> Slopes {
    let per_min = |f: &dyn Fn(&Sample) -> Option<f64>| {
        let points: Vec<(f64, f64)> = steady
            .iter()
            .filter_map(|s| f(s).map(|y| (s.t_secs / 60.0, y)))
            .collect();
        slope(&points)
    };
    Slopes {
        samples: steady.len(),
        rss_bytes_per_min: per_min(&|s| Some(s.rss_bytes as f64)),
        fds_per_min: per_min(&|s| Some(s.fds as f64)),
        tasks_per_min: per_min(&|s| s.tasks.map(|t| t as f64)),
        p99_us_per_min: per_min(&|s| s.p99_us.map(|p| p as f64)),
    }
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    first: Instant,
    end: Instant,
    lifetime_mean: f64,
    slow_pause: Duration,
    abrupt: f64,
}

/// One slot: clients one after another until the end.
async fn client(
    dialer: Arc<crate::net::Dialer>,
    uri: http::Uri,
    slot: u64,
    role: Role,
    timing: Timing,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
) {
    let mut rng = Rng::new(slot + 1);
    tokio::time::sleep_until(timing.first.into()).await;
    while Instant::now() < timing.end {
        let mut ws = match dialer.websocket(&uri).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                Progress::add(&progress.connect_failed, 1);
                Shared::tally(&shared.connect_errors, e.label());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        Progress::add(&progress.connected, 1);
        shared.connects.fetch_add(1, Ordering::Relaxed);
        shared.open.fetch_add(1, Ordering::Relaxed);
        let leave_at = (Instant::now() + rng.exp(timing.lifetime_mean)).min(timing.end);
        let ended = live(
            &mut ws,
            role,
            leave_at,
            timing.slow_pause,
            &shared,
            &progress,
        )
        .await;
        match ended {
            Some(end) => {
                // The server ended it: count how, and come back after a pause.
                Shared::tally(&shared.endings, end.label());
                drop(ws);
                shared.open.fetch_sub(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            None if rng.next_f64() < timing.abrupt || role == Role::Silent => {
                drop(ws);
                shared.open.fetch_sub(1, Ordering::Relaxed);
                shared.left_abrupt.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                close_politely(&mut ws, Duration::from_secs(5)).await;
                drop(ws);
                shared.open.fetch_sub(1, Ordering::Relaxed);
                shared.left_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One client's life until `leave_at`; `Some` if the server ended it first.
async fn live(
    ws: &mut WsConn,
    role: Role,
    leave_at: Instant,
    slow_pause: Duration,
    shared: &Shared,
    progress: &Progress,
) -> Option<End> {
    let deadline = tokio::time::sleep_until(leave_at.into());
    tokio::pin!(deadline);
    if role == Role::Silent {
        deadline.await;
        return None;
    }
    loop {
        let item = tokio::select! {
            () = &mut deadline => return None,
            item = ws.next() => item,
        };
        let message = match item {
            None => return Some(End::Eof),
            Some(Err(e)) => return Some(End::from_error(&e)),
            Some(Ok(m)) => m,
        };
        if let Some(end) = End::from_message(&message) {
            return Some(end);
        }
        if let Ok(stamp) = payload::decode(&message.as_payload()[..]) {
            let latency = payload::now_ns().saturating_sub(stamp.sent_ns);
            shared
                .window
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_ns(latency);
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            Progress::add(&progress.received, 1);
        }
        if role == Role::Slow {
            tokio::select! {
                () = &mut deadline => return None,
                () = tokio::time::sleep(slow_pause) => {}
            }
        }
    }
}

/// POSTs stamped messages round-robin over the channels until `end`.
async fn publish(
    dialer: Arc<crate::net::Dialer>,
    authority: String,
    base: String,
    args: SoakArgs,
    end: Instant,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
) {
    if args.publish_rate <= 0.0 {
        return;
    }
    let mut tasks = JoinSet::new();
    let per = args.publish_rate / args.publishers as f64;
    for stream in 0..args.publishers {
        let (dialer, authority, base, shared, progress) = (
            dialer.clone(),
            authority.clone(),
            base.clone(),
            shared.clone(),
            progress.clone(),
        );
        let (channels, size) = (args.channels, args.size as usize);
        tasks.spawn(async move {
            let mut conn = None;
            let mut seq: u32 = 0;
            let start = Instant::now();
            loop {
                let due = start + Duration::from_secs_f64(f64::from(seq) / per);
                if due >= end {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                let channel = (u64::from(seq) * args.publishers + stream) % channels;
                let path = format!("{base}/soak-{channel}");
                let stamp = Stamp {
                    stream: stream as u16,
                    seq,
                    sent_ns: payload::now_ns(),
                };
                seq = seq.wrapping_add(1);
                let Ok(body) = payload::encode(stamp, size) else {
                    return;
                };
                if conn.is_none() {
                    conn = PostConn::connect(&dialer, &authority, Duration::from_secs(10))
                        .await
                        .ok();
                }
                let ok = match conn.as_mut() {
                    Some(c) => c.post(&path, &body).await.is_ok(),
                    None => false,
                };
                if ok {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    Progress::add(&progress.sent, 1);
                } else {
                    conn = None;
                    shared.publish_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Open descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Result<u64, ScenarioError> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))?;
    Ok(dir.count() as u64)
}

/// `http://HOST:PORT/PATH` of the metrics endpoint.
#[derive(Debug, Clone)]
struct MetricsUrl {
    authority: String,
    path: String,
}

impl MetricsUrl {
    fn parse(url: &str) -> Result<Self, ScenarioError> {
        let bad = || {
            ScenarioError::Args(format!(
                "--metrics-url {url:?}: expected http://HOST:PORT/PATH"
            ))
        };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            authority: authority.to_owned(),
            path: format!("/{path}"),
        })
    }

    /// `switchboard_runtime_alive_tasks`, or `None` if the endpoint does not answer.
    async fn tasks(&self) -> Option<u64> {
        let fetch = async {
            let mut s = tokio::net::TcpStream::connect(&self.authority).await.ok()?;
            let req = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.path, self.authority
            );
            s.write_all(req.as_bytes()).await.ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).await.ok()?;
            gauge(&text, "switchboard_runtime_alive_tasks")
        };
        tokio::time::timeout(Duration::from_secs(5), fetch)
            .await
            .ok()
            .flatten()
    }
}

/// The value of an unlabelled gauge in a Prometheus exposition.
pub fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let value = l.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(slope(&[(0.0, 4.0), (1.0, 4.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 4.0)]), 0.0);
    }

    #[test]
    fn gauge_reads_the_unlabelled_value() {
        let text = "# HELP x\nswitchboard_runtime_alive_tasks_total 9\nswitchboard_runtime_alive_tasks 42\n";
        assert_eq!(gauge(text, "switchboard_runtime_alive_tasks"), Some(42));
        assert_eq!(gauge(text, "nope"), None);
    }

    #[test]
    fn exponential_lifetimes_have_about_the_mean() {
        let mut rng = Rng::new(7);
        let n = 20_000;
        let total: f64 = (0..n).map(|_| rng.exp(10.0).as_secs_f64()).sum();
        let mean = total / f64::from(n);
        assert!((9.0..11.0).contains(&mean), "{mean}");
    }
}
