//! `idle`: hold many subscribed connections and measure the server's memory
//! per connection.
//!
//! Steps: read the server's settled VmRSS; connect N subscribers (connection
//! `i` joins channel `i mod C`); prove every one is subscribed by publishing
//! one message per channel (by the channel's first connection over its
//! WebSocket, or by POST) and checking each connection got its channel's
//! message; read the settled VmRSS again; optionally hold and read it once
//! more; close everything.
//!
//! Connections are held in [`Shard`]s. One shard lives in this process when
//! N fits under the per-process cap; otherwise every shard is a child process
//! (see [`crate::worker`]) driven by [`ToWorker`] / [`FromWorker`] lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_websockets::Message;

use super::{Ctx, End, ScenarioError, close_politely};
use crate::cli::{CommonArgs, IdleArgs, PublishMode, secs};
use crate::http::PostConn;
use crate::net::{NetError, Target, WsConn, connect_many};
use crate::procfs::{self, Settled};
use crate::progress::Progress;
use crate::report::{Lines, Summary, fmt_bytes, fmt_rate, fmt_tally};
use crate::stats::Tally;
use crate::worker::{Worker, WorkerError, WorkerPipe};

/// The result of an `idle` run.
#[derive(Debug, Serialize)]
pub struct IdleSummary {
    /// Connections asked for.
    pub connections: u64,
    /// Connections made.
    pub connected: u64,
    /// Failed connects by kind.
    pub connect_errors: Tally,
    /// Seconds the connect phase took.
    pub connect_secs: f64,
    /// `connected / connect_secs`.
    pub connects_per_sec: f64,
    /// Processes holding connections (1: this one; more: child workers).
    pub processes: u64,
    /// Channels the connections were spread over.
    pub channels: u64,
    /// How the verification messages were published.
    pub publish: &'static str,
    /// Connections that received their channel's verification message.
    pub verified: u64,
    /// Text messages other than the expected one.
    pub unexpected_messages: u64,
    /// Connections the server ended during the run, by close code or kind.
    pub disconnects: Tally,
    /// The server's process id, if given.
    pub server_pid: Option<u32>,
    /// Server VmRSS before connecting, in bytes.
    pub server_rss_before: Option<u64>,
    /// Server VmRSS with all connections open and verified, in bytes.
    pub server_rss_after: Option<u64>,
    /// Whether the second reading settled before `--settle-timeout`.
    pub server_rss_stable: Option<bool>,
    /// `after - before`, in bytes.
    pub server_rss_delta: Option<i64>,
    /// `delta / connected`, in bytes.
    pub server_bytes_per_connection: Option<f64>,
    /// Seconds held after measuring.
    pub hold_secs: f64,
    /// Server VmRSS after the hold, in bytes.
    pub server_rss_after_hold: Option<u64>,
    /// Connections still open at the end.
    pub alive_at_end: u64,
    /// The bench's own VmRSS with all connections open (all processes).
    pub bench_rss: u64,
    /// `bench_rss / connected`.
    pub bench_bytes_per_connection: f64,
}

impl Summary for IdleSummary {
    fn scenario(&self) -> &'static str {
        "idle"
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.connected < self.connections {
            failures.push(format!(
                "{} connections failed",
                self.connections - self.connected
            ));
        }
        if self.verified < self.connected {
            failures.push(format!(
                "{} connections missed the verification message",
                self.connected - self.verified
            ));
        }
        if self.unexpected_messages > 0 {
            failures.push(format!("{} unexpected messages", self.unexpected_messages));
        }
        if self.disconnects.total() > 0 {
            failures.push(format!("{} connections dropped", self.disconnects.total()));
        }
        failures
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "connected",
            format!(
                "{}/{} in {:.2} s = {} over {} channel(s), {} process(es)",
                self.connected,
                self.connections,
                self.connect_secs,
                fmt_rate(self.connects_per_sec),
                self.channels,
                self.processes
            ),
        );
        if !self.connect_errors.is_empty() {
            out.kv("connect errors", fmt_tally(&self.connect_errors));
        }
        out.kv(
            "verified",
            format!(
                "{}/{} got their message (via {})",
                self.verified, self.connected, self.publish
            ),
        );
        out.kv("disconnects", fmt_tally(&self.disconnects));
        match (
            self.server_rss_before,
            self.server_rss_after,
            self.server_rss_delta,
        ) {
            (Some(before), Some(after), Some(delta)) => {
                let stable = if self.server_rss_stable == Some(false) {
                    " (not settled)"
                } else {
                    ""
                };
                out.kv(
                    "server rss",
                    format!(
                        "{} → {}{stable}: +{} = {} per connection",
                        fmt_bytes(before as f64),
                        fmt_bytes(after as f64),
                        fmt_bytes(delta as f64),
                        fmt_bytes(self.server_bytes_per_connection.unwrap_or(0.0))
                    ),
                );
            }
            _ => out.kv("server rss", "not measured (no --server-pid)"),
        }
        if let Some(after_hold) = self.server_rss_after_hold {
            out.kv(
                "after hold",
                format!(
                    "{:.0} s: server rss {}, {} connections alive",
                    self.hold_secs,
                    fmt_bytes(after_hold as f64),
                    self.alive_at_end
                ),
            );
        }
        out.kv(
            "bench rss",
            format!(
                "{} = {} per connection",
                fmt_bytes(self.bench_rss as f64),
                fmt_bytes(self.bench_bytes_per_connection)
            ),
        );
    }
}

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Publish (leaders, in `ws` mode) and wait for the verification messages.
    Verify,
    /// Report and close every connection.
    Finish,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The share is connected.
    Connected {
        /// Connections made.
        ok: u64,
        /// Failures by kind.
        errors: Tally,
    },
    /// Verification finished (or timed out).
    Verified {
        /// Connections that got their message.
        received: u64,
        /// Other text messages.
        unexpected: u64,
        /// The worker's VmRSS in bytes.
        rss_bytes: u64,
    },
    /// The share is about to close.
    Finished {
        /// Connections still open.
        alive: u64,
        /// Disconnects by close code or kind.
        disconnects: Tally,
    },
}

/// Which channel each connection joins and how channels are verified.
#[derive(Debug, Clone)]
struct Plan {
    target: Target,
    channels: u64,
    leaders_publish: bool,
}

impl Plan {
    fn channel_of(&self, index: u64) -> u64 {
        index % self.channels
    }

    fn uri(&self, channel: u64) -> Result<Uri, NetError> {
        if self.channels == 1 {
            Ok(self.target.uri().clone())
        } else {
            self.target.channel(&channel.to_string())
        }
    }

    fn message(channel: u64) -> String {
        format!("idle-verify-{channel}")
    }
}

#[derive(Debug, Default)]
struct ShardState {
    verified: AtomicU64,
    unexpected: AtomicU64,
    disconnected: AtomicU64,
    disconnects: Mutex<Tally>,
}

/// Connections held by this process.
#[derive(Debug)]
struct Shard {
    state: Arc<ShardState>,
    tasks: Vec<JoinHandle<End>>,
    go: watch::Sender<bool>,
    cancel: CancellationToken,
    connected: u64,
}

impl Shard {
    /// Connects connections `first .. first + count`.
    async fn connect(ctx: &Ctx, plan: &Plan, first: u64, count: u64) -> (Self, u64, Tally) {
        let state = Arc::new(ShardState::default());
        let (go, go_rx) = watch::channel(false);
        let cancel = CancellationToken::new();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let progress = ctx.progress.clone();
        let summary = connect_many(
            count,
            ctx.common.connect_concurrency(),
            |i| {
                let index = first + i;
                let channel = plan.channel_of(index);
                let uri = plan.uri(channel);
                let leader = plan.leaders_publish && index < plan.channels;
                let dialer = ctx.dialer.clone();
                let (state, go, cancel, tasks, progress) = (
                    state.clone(),
                    go_rx.clone(),
                    cancel.clone(),
                    tasks.clone(),
                    progress.clone(),
                );
                async move {
                    let (ws, handshake) = dialer.websocket(&uri?).await?;
                    let expected = Plan::message(channel);
                    let task =
                        tokio::spawn(hold(ws, expected, leader, go, state, cancel, progress));
                    tasks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(task);
                    Ok(handshake)
                }
            },
            |ok| {
                Progress::add(
                    if ok {
                        &progress.connected
                    } else {
                        &progress.connect_failed
                    },
                    1,
                )
            },
        )
        .await;
        let tasks = std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let shard = Self {
            state,
            tasks,
            go,
            cancel,
            connected: summary.ok,
        };
        (shard, summary.ok, summary.errors)
    }

    /// Lets leaders publish their channel's message.
    fn start_verify(&self) {
        self.go.send_replace(true);
    }

    /// Waits until every connection got its message or is gone, or `timeout`.
    async fn wait_verified(&self, timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        loop {
            let verified = self.state.verified.load(Ordering::Relaxed);
            let gone = self.state.disconnected.load(Ordering::Relaxed);
            if verified + gone >= self.connected || Instant::now() >= deadline {
                return (verified, self.state.unexpected.load(Ordering::Relaxed));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes every connection; returns how many were still open and the
    /// disconnects seen.
    async fn finish(self) -> (u64, Tally) {
        let alive = self.connected - self.state.disconnected.load(Ordering::Relaxed);
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let disconnects = self
            .state
            .disconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (alive, disconnects)
    }
}

/// One held connection: answers pings (by reading), publishes once if it is
/// its channel's leader, and checks for its channel's message.
async fn hold(
    mut ws: WsConn,
    expected: String,
    leader: bool,
    mut go: watch::Receiver<bool>,
    state: Arc<ShardState>,
    cancel: CancellationToken,
    progress: Arc<Progress>,
) -> End {
    let mut waiting_to_send = leader;
    let mut got = false;
    let end = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break End::Stopped,
            go_ahead = async { go.wait_for(|go| *go).await.is_ok() }, if waiting_to_send => {
                waiting_to_send = false;
                if go_ahead {
                    if let Err(e) = ws.send(Message::text(expected.clone())).await {
                        break End::from_error(&e);
                    }
                    Progress::add(&progress.sent, 1);
                }
            }
            item = ws.next() => match item {
                None => break End::Eof,
                Some(Err(e)) => break End::from_error(&e),
                Some(Ok(message)) => {
                    if let Some(end) = End::from_message(&message) {
                        break end;
                    }
                    if message.is_text() {
                        Progress::add(&progress.received, 1);
                        if !got && message.as_payload()[..] == *expected.as_bytes() {
                            got = true;
                            state.verified.fetch_add(1, Ordering::Relaxed);
                        } else {
                            state.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            },
        }
    };
    if end.is_disconnect() {
        state.disconnected.fetch_add(1, Ordering::Relaxed);
        Progress::add(&progress.disconnected, 1);
        state
            .disconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(end.label());
    } else {
        close_politely(&mut ws, Duration::from_secs(2)).await;
    }
    end
}

/// Where a share of the connections lives.
#[derive(Debug)]
enum Holder {
    Local(Shard),
    Child { index: usize, worker: Box<Worker> },
}

fn worker_err(index: usize) -> impl Fn(WorkerError) -> ScenarioError {
    move |source| ScenarioError::Worker { index, source }
}

/// Generous time for a worker step that has its own internal timeout.
fn worker_step(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(30)
}

/// Runs the `idle` scenario.
pub async fn run(ctx: &Ctx, args: &IdleArgs) -> Result<IdleSummary, ScenarioError> {
    let channels = if args.distinct {
        args.connections
    } else {
        args.channels
    };
    let plan = Plan {
        target: ctx.target.clone(),
        channels,
        leaders_publish: args.publish == PublishMode::Ws,
    };
    let progress = ctx.progress.clone();
    let settle_timeout = secs(args.settle_timeout);
    let verify_timeout = secs(args.verify_timeout);

    let server_before = match args.server_pid {
        Some(pid) => {
            Some(procfs::settled_rss(pid, Duration::from_millis(200), settle_timeout).await?)
        }
        None => None,
    };

    // Connect, here or in children.
    progress.set_phase("connect");
    let fd_room = procfs::nofile_limit()?.saturating_sub(128).max(1);
    let per_process = args.per_process.min(fd_room);
    let started = Instant::now();
    let mut holders = Vec::new();
    let mut connected = 0;
    let mut connect_errors = Tally::default();
    if args.connections <= per_process {
        let (shard, ok, errors) = Shard::connect(ctx, &plan, 0, args.connections).await;
        connected += ok;
        connect_errors.merge(&errors);
        holders.push(Holder::Local(shard));
    } else {
        let processes = args.connections.div_ceil(per_process);
        let share = args.connections.div_ceil(processes);
        let mut first = 0;
        let mut index = 0;
        while first < args.connections {
            let count = share.min(args.connections - first);
            let argv = worker_args(&ctx.common, args, channels, first, count);
            let worker = Worker::spawn(&argv).map_err(worker_err(index))?;
            holders.push(Holder::Child {
                index,
                worker: Box::new(worker),
            });
            first += count;
            index += 1;
        }
        let step = worker_step(ctx.common.connect_timeout() * 4 + Duration::from_secs(120));
        for holder in &mut holders {
            if let Holder::Child { index, worker } = holder {
                match worker.recv(step).await.map_err(worker_err(*index))? {
                    FromWorker::Connected { ok, errors } => {
                        connected += ok;
                        Progress::add(&progress.connected, ok);
                        connect_errors.merge(&errors);
                    }
                    _ => {
                        return Err(ScenarioError::WorkerProtocol {
                            index: *index,
                            expected: "connected",
                        });
                    }
                }
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();

    // Verify: every connection gets its channel's message.
    progress.set_phase("verify");
    for holder in &mut holders {
        match holder {
            Holder::Local(shard) => shard.start_verify(),
            Holder::Child { index, worker } => worker
                .send(&ToWorker::Verify)
                .await
                .map_err(worker_err(*index))?,
        }
    }
    if args.publish == PublishMode::Post {
        post_verification(ctx, &plan).await?;
    }
    let mut verified = 0;
    let mut unexpected = 0;
    let mut bench_rss = procfs::own_rss_bytes().await?;
    for holder in &mut holders {
        match holder {
            Holder::Local(shard) => {
                let (received, other) = shard.wait_verified(verify_timeout).await;
                verified += received;
                unexpected += other;
                bench_rss = procfs::own_rss_bytes().await?;
            }
            Holder::Child { index, worker } => {
                match worker
                    .recv(worker_step(verify_timeout))
                    .await
                    .map_err(worker_err(*index))?
                {
                    FromWorker::Verified {
                        received,
                        unexpected: other,
                        rss_bytes,
                    } => {
                        verified += received;
                        unexpected += other;
                        bench_rss += rss_bytes;
                    }
                    _ => {
                        return Err(ScenarioError::WorkerProtocol {
                            index: *index,
                            expected: "verified",
                        });
                    }
                }
            }
        }
    }

    // Measure.
    progress.set_phase("measure");
    let server_after = match args.server_pid {
        Some(pid) => {
            Some(procfs::settled_rss(pid, Duration::from_millis(500), settle_timeout).await?)
        }
        None => None,
    };
    let hold_secs = args.hold.max(0.0);
    let server_after_hold = match (args.server_pid, hold_secs > 0.0) {
        (Some(pid), true) => {
            progress.set_phase("hold");
            tokio::time::sleep(secs(hold_secs)).await;
            Some(procfs::rss_bytes(pid).await?)
        }
        (None, true) => {
            progress.set_phase("hold");
            tokio::time::sleep(secs(hold_secs)).await;
            None
        }
        _ => None,
    };

    // Close.
    progress.set_phase("close");
    let mut alive_at_end = 0;
    let mut disconnects = Tally::default();
    let processes = holders.len() as u64;
    for holder in holders {
        match holder {
            Holder::Local(shard) => {
                let (alive, seen) = shard.finish().await;
                alive_at_end += alive;
                disconnects.merge(&seen);
            }
            Holder::Child { index, mut worker } => {
                worker
                    .send(&ToWorker::Finish)
                    .await
                    .map_err(worker_err(index))?;
                match worker
                    .recv(worker_step(Duration::ZERO))
                    .await
                    .map_err(worker_err(index))?
                {
                    FromWorker::Finished {
                        alive,
                        disconnects: seen,
                    } => {
                        alive_at_end += alive;
                        disconnects.merge(&seen);
                    }
                    _ => {
                        return Err(ScenarioError::WorkerProtocol {
                            index,
                            expected: "finished",
                        });
                    }
                }
                worker
                    .wait(Duration::from_secs(30))
                    .await
                    .map_err(worker_err(index))?;
            }
        }
    }

    let delta = match (server_before, server_after) {
        (Some(before), Some(after)) => Some(
            i64::try_from(after.bytes).unwrap_or(i64::MAX)
                - i64::try_from(before.bytes).unwrap_or(i64::MAX),
        ),
        _ => None,
    };
    let per_conn = |bytes: f64| {
        if connected > 0 {
            bytes / connected as f64
        } else {
            0.0
        }
    };
    Ok(IdleSummary {
        connections: args.connections,
        connected,
        connect_errors,
        connect_secs,
        connects_per_sec: if connect_secs > 0.0 {
            connected as f64 / connect_secs
        } else {
            0.0
        },
        processes,
        channels,
        publish: match args.publish {
            PublishMode::Ws => "ws",
            PublishMode::Post => "post",
        },
        verified,
        unexpected_messages: unexpected,
        disconnects,
        server_pid: args.server_pid,
        server_rss_before: server_before.map(|s: Settled| s.bytes),
        server_rss_after: server_after.map(|s| s.bytes),
        server_rss_stable: server_after.map(|s| s.stable),
        server_rss_delta: delta,
        server_bytes_per_connection: delta.map(|d| per_conn(d as f64)),
        hold_secs,
        server_rss_after_hold: server_after_hold,
        alive_at_end,
        bench_rss,
        bench_bytes_per_connection: per_conn(bench_rss as f64),
    })
}

/// The command line of a worker holding `count` connections from `first`.
fn worker_args(
    common: &CommonArgs,
    args: &IdleArgs,
    channels: u64,
    first: u64,
    count: u64,
) -> Vec<String> {
    let publish = match args.publish {
        PublishMode::Ws => "ws",
        PublishMode::Post => "post",
    };
    [
        "idle",
        "--worker",
        "--json",
        "--threads",
        "1",
        "--url",
        &common.url,
        "--sources",
        &common.sources.to_string(),
        "--connect-concurrency",
        &common.connect_concurrency.to_string(),
        "--connect-timeout",
        &common.connect_timeout.to_string(),
        "--timeout",
        &common.timeout.to_string(),
        "--connections",
        &count.to_string(),
        "--first-index",
        &first.to_string(),
        "--channels",
        &channels.to_string(),
        "--publish",
        publish,
        "--verify-timeout",
        &args.verify_timeout.to_string(),
        "--per-process",
        &count.to_string(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// POSTs each channel's verification message, over a few keep-alive
/// connections.
async fn post_verification(ctx: &Ctx, plan: &Plan) -> Result<(), ScenarioError> {
    const CONNECTIONS: u64 = 4;
    let timeout = ctx.common.connect_timeout();
    let mut tasks = Vec::new();
    for lane in 0..CONNECTIONS.min(plan.channels) {
        let mut conn = PostConn::connect(&ctx.dialer, ctx.target.authority(), timeout).await?;
        let plan = plan.clone();
        let progress = ctx.progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut channel = lane;
            while channel < plan.channels {
                let uri = plan.uri(channel)?;
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                conn.post(path, Plan::message(channel).as_bytes()).await?;
                Progress::add(&progress.sent, 1);
                channel += CONNECTIONS;
            }
            Ok::<(), ScenarioError>(())
        }));
    }
    for task in tasks {
        match task.await {
            Ok(result) => result?,
            Err(e) => return Err(ScenarioError::Io(std::io::Error::other(e))),
        }
    }
    Ok(())
}

/// Runs as a worker: holds `--connections` from `--first-index`, driven by
/// the parent over stdin/stdout.
pub async fn run_worker(ctx: &Ctx, args: &IdleArgs) -> Result<(), ScenarioError> {
    let plan = Plan {
        target: ctx.target.clone(),
        channels: args.channels,
        leaders_publish: args.publish == PublishMode::Ws,
    };
    let io_err = worker_err(0);
    let mut pipe = WorkerPipe::default();
    let (shard, ok, errors) = Shard::connect(ctx, &plan, args.first_index, args.connections).await;
    pipe.send(&FromWorker::Connected { ok, errors })
        .await
        .map_err(&io_err)?;
    loop {
        match pipe.recv::<ToWorker>().await {
            Ok(ToWorker::Verify) => {
                shard.start_verify();
                let (received, unexpected) = shard.wait_verified(secs(args.verify_timeout)).await;
                let rss_bytes = procfs::own_rss_bytes().await?;
                pipe.send(&FromWorker::Verified {
                    received,
                    unexpected,
                    rss_bytes,
                })
                .await
                .map_err(&io_err)?;
            }
            Ok(ToWorker::Finish) | Err(WorkerError::Closed) => {
                let (alive, disconnects) = shard.finish().await;
                // The parent may be gone already; nothing else to tell it.
                let _ = pipe
                    .send(&FromWorker::Finished { alive, disconnects })
                    .await;
                return Ok(());
            }
            Err(e) => return Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plan_assigns_channels() {
        let target = Target::resolve("ws://127.0.0.1:8199/pubsub/bench")
            .await
            .unwrap();
        let one = Plan {
            target: target.clone(),
            channels: 1,
            leaders_publish: true,
        };
        assert_eq!(
            one.uri(one.channel_of(5)).unwrap().to_string(),
            "ws://127.0.0.1:8199/pubsub/bench"
        );
        let many = Plan {
            target,
            channels: 3,
            leaders_publish: true,
        };
        assert_eq!(many.channel_of(7), 1);
        assert_eq!(
            many.uri(1).unwrap().to_string(),
            "ws://127.0.0.1:8199/pubsub/bench/1"
        );
        assert_eq!(Plan::message(1), "idle-verify-1");
    }

    #[test]
    fn worker_messages_are_tagged_lines() {
        let line = serde_json::to_string(&FromWorker::Verified {
            received: 3,
            unexpected: 0,
            rss_bytes: 10,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"verified","received":3,"unexpected":0,"rss_bytes":10}"#
        );
        let back: ToWorker = serde_json::from_str(r#"{"type":"finish"}"#).unwrap();
        assert!(matches!(back, ToWorker::Finish));
    }

    #[test]
    fn worker_command_line_parses() {
        use clap::Parser as _;
        let cli =
            crate::cli::Cli::try_parse_from(["switchboard-bench", "idle", "--distinct"]).unwrap();
        let crate::cli::Scenario::Idle(args) = cli.scenario else {
            panic!("not idle")
        };
        let argv = worker_args(&cli.common, &args, 15_000, 18_000, 9_000);
        let child = crate::cli::Cli::try_parse_from(
            std::iter::once("switchboard-bench".to_owned()).chain(argv),
        )
        .unwrap();
        let crate::cli::Scenario::Idle(child_args) = child.scenario else {
            panic!("not idle")
        };
        assert!(child_args.worker && child.common.json);
        assert_eq!(
            (
                child_args.connections,
                child_args.first_index,
                child_args.channels
            ),
            (9_000, 18_000, 15_000)
        );
    }
}
