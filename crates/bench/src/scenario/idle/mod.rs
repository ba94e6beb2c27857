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
//! Connections are held in [`shard::Shard`]s. One shard lives in this
//! process when N fits under the per-process cap; otherwise every shard is a
//! child process ([`holder::Holder`]).

mod holder;
mod shard;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use holder::run_worker;
use holder::{Holder, Verified};
use shard::Plan;

use super::{Ctx, ScenarioError};
use crate::cli::{IdleArgs, PublishMode, secs};
use crate::http::PostConn;
use crate::procfs::{self, Settled};
use crate::progress::Progress;
use crate::report::{Failures, Lines, Summary, fmt_bytes, fmt_rate, fmt_tally};
use crate::stats::Tally;

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
        Failures::default()
            .count(
                self.connections.saturating_sub(self.connected),
                "connections failed",
            )
            .count(
                self.connected.saturating_sub(self.verified),
                "connections missed the verification message",
            )
            .count(self.unexpected_messages, "unexpected messages")
            .count(self.disconnects.total(), "connections dropped")
            .into_vec()
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
    let server_rss = |interval_ms| async move {
        match args.server_pid {
            Some(pid) => {
                procfs::settled_rss(pid, Duration::from_millis(interval_ms), settle_timeout)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    };
    let server_before = server_rss(200).await?;

    // Connect, here or in children.
    progress.set_phase("connect");
    let started = Instant::now();
    let mut holders = start_holders(ctx, args, &plan).await?;
    let mut connected = 0;
    let mut connect_errors = Tally::default();
    let step = ctx.common.connect_timeout() * 4 + Duration::from_secs(150);
    for holder in &mut holders {
        let (ok, errors) = holder.connected(step).await?;
        if matches!(holder, Holder::Child { .. }) {
            Progress::add(&progress.connected, ok);
        }
        connected += ok;
        connect_errors.merge(&errors);
    }
    let connect_secs = started.elapsed().as_secs_f64();

    // Verify: every connection gets its channel's message.
    progress.set_phase("verify");
    for holder in &mut holders {
        holder.start_verify().await?;
    }
    if args.publish == PublishMode::Post {
        post_verification(ctx, &plan).await?;
    }
    let mut verified = Verified::default();
    let children = holders
        .iter()
        .filter(|h| matches!(h, Holder::Child { .. }))
        .count();
    if children > 0 {
        verified.rss_bytes = procfs::own_rss_bytes().await?;
    }
    for holder in &mut holders {
        let v = holder.verified(verify_timeout).await?;
        verified.received += v.received;
        verified.unexpected += v.unexpected;
        verified.rss_bytes += v.rss_bytes;
    }

    // Measure, hold, measure.
    progress.set_phase("measure");
    let server_after = server_rss(500).await?;
    let hold_secs = args.hold.max(0.0);
    let mut server_after_hold = None;
    if hold_secs > 0.0 {
        progress.set_phase("hold");
        tokio::time::sleep(secs(hold_secs)).await;
        if let Some(pid) = args.server_pid {
            server_after_hold = Some(procfs::rss_bytes(pid).await?);
        }
    }

    // Close.
    progress.set_phase("close");
    let processes = holders.len() as u64;
    let mut alive_at_end = 0;
    let mut disconnects = Tally::default();
    for holder in holders {
        let (alive, seen) = holder.finish().await?;
        alive_at_end += alive;
        disconnects.merge(&seen);
    }

    let delta = match (server_before, server_after) {
        (Some(before), Some(after)) => Some(signed(after.bytes) - signed(before.bytes)),
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
        verified: verified.received,
        unexpected_messages: verified.unexpected,
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
        bench_rss: verified.rss_bytes,
        bench_bytes_per_connection: per_conn(verified.rss_bytes as f64),
    })
}

fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Connects everything in this process if it fits under the per-process cap
/// (and the open-file limit); otherwise starts one child per share.
async fn start_holders(
    ctx: &Ctx,
    args: &IdleArgs,
    plan: &Plan,
) -> Result<Vec<Holder>, ScenarioError> {
    let fd_room = procfs::nofile_limit()?.saturating_sub(128).max(1);
    let per_process = args.per_process.min(fd_room);
    if args.connections <= per_process {
        return Ok(vec![Holder::local(ctx, plan, 0, args.connections).await]);
    }
    let processes = args.connections.div_ceil(per_process);
    let share = args.connections.div_ceil(processes);
    let mut holders = Vec::new();
    let mut first = 0;
    while first < args.connections {
        let count = share.min(args.connections - first);
        holders.push(Holder::child(
            holders.len(),
            ctx,
            args,
            plan.channels,
            first,
            count,
        )?);
        first += count;
    }
    Ok(holders)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_renders_and_fails_on_drops() {
        let mut summary = IdleSummary {
            connections: 100,
            connected: 100,
            connect_errors: Tally::default(),
            connect_secs: 0.5,
            connects_per_sec: 200.0,
            processes: 1,
            channels: 1,
            publish: "ws",
            verified: 100,
            unexpected_messages: 0,
            disconnects: Tally::default(),
            server_pid: Some(42),
            server_rss_before: Some(10 << 20),
            server_rss_after: Some((10 << 20) + 819_200),
            server_rss_stable: Some(true),
            server_rss_delta: Some(819_200),
            server_bytes_per_connection: Some(8192.0),
            hold_secs: 0.0,
            server_rss_after_hold: None,
            alive_at_end: 100,
            bench_rss: 1 << 20,
            bench_bytes_per_connection: 10_485.76,
        };
        let text = crate::report::render(&summary, false).unwrap();
        assert!(text.starts_with("idle: PASS\n"), "{text}");
        assert!(
            text.contains(
                "server rss       10.00 MiB → 10.78 MiB: +800.0 KiB = 8.0 KiB per connection"
            ),
            "{text}"
        );
        summary.disconnects.add("close 1001");
        summary.verified = 99;
        assert_eq!(
            summary.failures(),
            vec![
                "1 connections missed the verification message".to_owned(),
                "1 connections dropped".to_owned()
            ]
        );
    }
}
