//! `churn`: open connections at a steady rate; each one subscribes, sends a
//! short text and waits for its echo, holds for a while, then closes
//! cleanly.
//!
//! Connection `i` is due at `start + i / rate`. By default each connection
//! gets its own channel (so channels are created and torn down at the same
//! rate), or all share the URL's channel. A connection due while
//! `--max-inflight` are open is skipped and counted, so the bench never
//! outgrows its file limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_websockets::{CloseCode, Message};

use super::{Ctx, End, ScenarioError};
use crate::cli::{ChurnArgs, secs};
use crate::net::{Dialer, WsConn};
use crate::progress::Progress;
use crate::report::{Failures, Lines, Summary, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, Tally};

/// The result of a `churn` run.
#[derive(Debug, Serialize)]
pub struct ChurnSummary {
    /// Target connections per second.
    pub rate: f64,
    /// Seconds of opening connections.
    pub duration_secs: f64,
    /// Milliseconds each connection stayed open after its echo.
    pub hold_ms: u64,
    /// Whether each connection waited for its echo.
    pub echo: bool,
    /// Whether all connections shared one channel.
    pub shared_channel: bool,
    /// Connections due (`rate × duration`).
    pub scheduled: u64,
    /// Due connections skipped because `--max-inflight` were open.
    pub skipped: u64,
    /// Handshakes completed.
    pub connected: u64,
    /// Connections that went through every step without error.
    pub completed: u64,
    /// Failures by kind.
    pub errors: Tally,
    /// Most connections open at once.
    pub peak_inflight: u64,
    /// Seconds from the first connect to the last completed handshake.
    pub connect_secs: f64,
    /// `connected / connect_secs`.
    pub connects_per_sec: f64,
    /// Seconds from the first connect until every connection was done.
    pub total_secs: f64,
    /// TCP connect plus WebSocket handshake.
    pub handshake: LatencySummary,
    /// Send to echo received.
    pub echo_latency: LatencySummary,
}

impl Summary for ChurnSummary {
    fn scenario(&self) -> &'static str {
        "churn"
    }

    fn failures(&self) -> Vec<String> {
        Failures::default()
            .count(self.errors.total(), "connections failed")
            .into_vec()
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "target",
            format!(
                "{} for {:.1} s, hold {} ms, echo {}, {} channel",
                fmt_rate(self.rate),
                self.duration_secs,
                self.hold_ms,
                if self.echo { "on" } else { "off" },
                if self.shared_channel {
                    "one shared"
                } else {
                    "one per connection"
                }
            ),
        );
        out.kv(
            "connections",
            format!(
                "{} scheduled, {} skipped (in-flight cap), {} connected, {} completed, peak {} open",
                self.scheduled, self.skipped, self.connected, self.completed, self.peak_inflight
            ),
        );
        out.kv(
            "achieved",
            format!(
                "{} connects in {:.2} s; all done in {:.2} s",
                fmt_rate(self.connects_per_sec),
                self.connect_secs,
                self.total_secs
            ),
        );
        out.kv("errors", fmt_tally(&self.errors));
        out.kv("handshake", fmt_latency(&self.handshake));
        if self.echo {
            out.kv("echo", fmt_latency(&self.echo_latency));
        }
    }
}

/// What one connection's life measured.
#[derive(Debug, Default)]
struct Cycle {
    handshake: Option<Duration>,
    connected_at: Duration,
    echo: Option<Duration>,
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct Steps {
    echo: bool,
    hold: Duration,
    echo_timeout: Duration,
}

/// Runs the `churn` scenario.
pub async fn run(ctx: &Ctx, args: &ChurnArgs) -> Result<ChurnSummary, ScenarioError> {
    if args.rate <= 0.0 || !args.rate.is_finite() {
        return Err(ScenarioError::Args("--rate must be positive".into()));
    }
    let scheduled = (args.rate * args.duration.max(0.0)).round() as u64;
    let steps = Arc::new(Steps {
        echo: !args.no_echo,
        hold: Duration::from_millis(args.hold_ms),
        echo_timeout: secs(args.echo_timeout),
    });
    let progress = ctx.progress.clone();
    progress.set_phase("churn");

    let mut handshake = Latency::precise();
    let mut echo_latency = Latency::precise();
    let mut errors = Tally::default();
    let (mut connected, mut completed, mut skipped, mut peak) = (0u64, 0u64, 0u64, 0u64);
    let mut last_connected_at = Duration::ZERO;
    let mut record = |cycle: Cycle| {
        if let Some(time) = cycle.handshake {
            connected += 1;
            handshake.record(time);
            last_connected_at = last_connected_at.max(cycle.connected_at);
        }
        if let Some(time) = cycle.echo {
            echo_latency.record(time);
        }
        match cycle.error {
            Some(error) => {
                errors.add(error);
                Progress::add(&progress.errors, 1);
            }
            None => completed += 1,
        }
    };

    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..scheduled {
        let due = start + Duration::from_secs_f64(index as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        while let Some(done) = tasks.try_join_next() {
            record(done.unwrap_or_else(|e| Cycle {
                error: Some(format!("task: {e}")),
                ..Cycle::default()
            }));
        }
        if tasks.len() as u64 >= args.max_inflight {
            skipped += 1;
            continue;
        }
        let uri = if args.shared_channel {
            ctx.target.uri().clone()
        } else {
            ctx.target.channel(&format!("churn-{index}"))?
        };
        tasks.spawn(cycle(
            ctx.dialer.clone(),
            uri,
            index,
            steps.clone(),
            start,
            progress.clone(),
        ));
        peak = peak.max(tasks.len() as u64);
    }
    progress.set_phase("finish");
    while let Some(done) = tasks.join_next().await {
        record(done.unwrap_or_else(|e| Cycle {
            error: Some(format!("task: {e}")),
            ..Cycle::default()
        }));
    }
    let total_secs = start.elapsed().as_secs_f64();
    let connect_secs = last_connected_at.as_secs_f64();

    Ok(ChurnSummary {
        rate: args.rate,
        duration_secs: args.duration,
        hold_ms: args.hold_ms,
        echo: steps.echo,
        shared_channel: args.shared_channel,
        scheduled,
        skipped,
        connected,
        completed,
        errors,
        peak_inflight: peak,
        connect_secs,
        connects_per_sec: if connect_secs > 0.0 {
            connected as f64 / connect_secs
        } else {
            0.0
        },
        total_secs,
        handshake: handshake.summary(),
        echo_latency: echo_latency.summary(),
    })
}

/// One connection: connect, echo, hold, close.
async fn cycle(
    dialer: Arc<Dialer>,
    uri: Uri,
    index: u64,
    steps: Arc<Steps>,
    start: Instant,
    progress: Arc<Progress>,
) -> Cycle {
    let mut cycle = Cycle::default();
    let (mut ws, handshake) = match dialer.websocket(&uri).await {
        Ok(connected) => connected,
        Err(e) => {
            Progress::add(&progress.connect_failed, 1);
            cycle.error = Some(e.label());
            return cycle;
        }
    };
    Progress::add(&progress.connected, 1);
    cycle.handshake = Some(handshake);
    cycle.connected_at = start.elapsed();
    if steps.echo {
        match echo(&mut ws, index, steps.echo_timeout, &progress).await {
            Ok(time) => cycle.echo = Some(time),
            Err(error) => {
                cycle.error = Some(error);
                return cycle;
            }
        }
    }
    if !steps.hold.is_zero() {
        tokio::time::sleep(steps.hold).await;
    }
    if let Err(error) = close(&mut ws).await {
        cycle.error = Some(error);
    }
    cycle
}

/// Sends `churn-<index>` and waits for it to come back (other messages on a
/// shared channel are skipped).
async fn echo(
    ws: &mut WsConn,
    index: u64,
    timeout: Duration,
    progress: &Progress,
) -> Result<Duration, String> {
    let text = format!("churn-{index}");
    let sent = Instant::now();
    let round_trip = async {
        ws.send(Message::text(text.clone()))
            .await
            .map_err(|e| format!("send: {}", End::from_error(&e).label()))?;
        Progress::add(&progress.sent, 1);
        while let Some(item) = ws.next().await {
            let message = item.map_err(|e| format!("echo: {}", End::from_error(&e).label()))?;
            if let Some(end) = End::from_message(&message) {
                return Err(format!("echo: {}", end.label()));
            }
            if message.as_payload()[..] == *text.as_bytes() {
                Progress::add(&progress.received, 1);
                return Ok(sent.elapsed());
            }
        }
        Err("echo: eof".to_owned())
    };
    tokio::time::timeout(timeout, round_trip)
        .await
        .map_err(|_| "echo timeout".to_owned())?
}

/// Sends Close 1000 and waits for the server's Close (or the stream's end).
async fn close(ws: &mut WsConn) -> Result<(), String> {
    let handshake = async {
        ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
            .await
            .map_err(|e| format!("close: {}", End::from_error(&e).label()))?;
        loop {
            match ws.next().await {
                None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("close: {}", End::from_error(&e).label())),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), handshake)
        .await
        .map_err(|_| "close timeout".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_errors() {
        let mut summary = ChurnSummary {
            rate: 10.0,
            duration_secs: 1.0,
            hold_ms: 0,
            echo: true,
            shared_channel: false,
            scheduled: 10,
            skipped: 0,
            connected: 10,
            completed: 10,
            errors: Tally::default(),
            peak_inflight: 1,
            connect_secs: 0.9,
            connects_per_sec: 11.1,
            total_secs: 1.0,
            handshake: LatencySummary::default(),
            echo_latency: LatencySummary::default(),
        };
        assert!(summary.failures().is_empty());
        summary.errors.add("echo timeout");
        assert_eq!(summary.failures(), vec!["1 connections failed".to_owned()]);
    }
}
