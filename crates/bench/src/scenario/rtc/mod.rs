//! `rtc`: WebRTC signaling through the rtc service (webrtc-signal-server
//! protocol): `--pairs` pairs of registered users negotiate `--rounds` calls
//! each.
//!
//! Setup: every user registers (`POST {prefix}/v1/register`, form body) and
//! opens `{prefix}/v1/connect` with its cookie. A round is one negotiation:
//! the caller sends a `video-offer` (`--offer-size` bytes of payload) and
//! `--candidates` `ice-candidate`s (`--candidate-size`) to the callee; the
//! callee answers each offer at once with a `video-answer` (`--answer-size`)
//! and its own candidates; the round ends when the caller has all of them.
//! Pairs run concurrently, rounds within a pair one after another (a closed
//! loop, like real calls).
//!
//! Measured: messages relayed per second over the exchange phase, the relay
//! latency of every message (send → arrival at the target, one clock: both
//! ends are in this process), and the negotiation time of every round.
//! Checked: every message arrives once, in order per direction, and no
//! `TARGET_NOT_FOUND` or disconnect happens.
//!
//! The server must not rate-limit registrations for large runs
//! (`[rtc] register_per_minute = 0`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use http::Uri;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Ctx, End};
use crate::cli::secs;
use crate::net::{NetError, WsConn};
use crate::payload;
use crate::progress::Progress;
use crate::report::{Failures, Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, Tally};

/// `rtc` options.
#[derive(Debug, Clone, Args)]
pub struct RtcArgs {
    /// Pairs of users (two connections each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=30_000))]
    pub pairs: u64,
    /// Negotiations per pair.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// ICE candidates each side sends per negotiation.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub candidates: u64,
    /// Payload bytes of an offer (a typical audio+video SDP is 3-6 KB).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(64..=60_000))]
    pub offer_size: u64,
    /// Payload bytes of an answer.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(64..=60_000))]
    pub answer_size: u64,
    /// Payload bytes of an ICE candidate.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(64..=60_000))]
    pub candidate_size: u64,
    /// The rtc service's prefix on the server (`--url` gives host and port).
    #[arg(long, default_value = "/rtc")]
    pub prefix: String,
    /// Start a pair's negotiations this many milliseconds apart (0: each
    /// right after the previous one). Sets the offered load:
    /// `pairs × 2 × (1 + candidates) × 1000 / interval` messages a second.
    #[arg(long, default_value_t = 0)]
    pub round_interval_ms: u64,
    /// Give up on a connection when nothing arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
}

/// Why the run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    /// The arguments do not work together.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// Dialing failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Registering a name failed.
    #[error("registering {name}: {reason}")]
    Register {
        /// The name.
        name: String,
        /// What the server said, or what went wrong.
        reason: String,
    },
}

/// The result of an `rtc` run.
#[derive(Debug, Serialize)]
pub struct RtcSummary {
    /// Pairs of users.
    pub pairs: u64,
    /// Negotiations per pair.
    pub rounds: u64,
    /// Candidates per side per negotiation.
    pub candidates: u64,
    /// Payload sizes: offer, answer, candidate.
    pub sizes: [u64; 3],
    /// Milliseconds between a pair's negotiation starts (0: back to back).
    pub round_interval_ms: u64,
    /// The load that pacing offers, in messages a second (0: unpaced).
    pub offered_per_sec: f64,
    /// Seconds to register every user.
    pub register_secs: f64,
    /// Seconds to connect every user.
    pub connect_secs: f64,
    /// Users connected.
    pub connected: u64,
    /// Messages the run should relay.
    pub expected: u64,
    /// Messages that arrived.
    pub received: u64,
    /// Bytes of the frames that arrived.
    pub received_bytes: u64,
    /// Messages that arrived out of order within their direction.
    pub out_of_order: u64,
    /// `TARGET_NOT_FOUND` answers.
    pub not_found: u64,
    /// Seconds of the exchange phase.
    pub exchange_secs: f64,
    /// `received / exchange_secs`.
    pub messages_per_sec: f64,
    /// Send → arrival of every message.
    pub relay_latency: LatencySummary,
    /// Offer sent → the callee's last candidate arrived, per negotiation.
    pub negotiation: LatencySummary,
    /// Connections that ended early, by how.
    pub disconnects: Tally,
    /// Connection failures, by kind.
    pub errors: Tally,
}

impl Summary for RtcSummary {
    fn scenario(&self) -> &'static str {
        "rtc"
    }

    fn failures(&self) -> Vec<String> {
        Failures::default()
            .short_of(self.received, self.expected, "messages missing")
            .count(self.out_of_order, "messages out of order")
            .count(self.not_found, "TARGET_NOT_FOUND answers")
            .count(self.disconnects.total(), "connections ended early")
            .count(self.errors.total(), "connections failed")
            .into_vec()
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "shape",
            format!(
                "{} pairs × {} negotiations, offer {} B + answer {} B + {}×2 candidates of {} B",
                self.pairs,
                self.rounds,
                self.sizes[0],
                self.sizes[1],
                self.candidates,
                self.sizes[2]
            ),
        );
        out.kv(
            "setup",
            format!(
                "{} users registered in {:.2} s, {} connected in {:.2} s",
                self.pairs * 2,
                self.register_secs,
                self.connected,
                self.connect_secs
            ),
        );
        out.kv(
            "relayed",
            format!(
                "{} of {} messages ({} bytes) in {:.2} s",
                fmt_count(self.received as f64),
                fmt_count(self.expected as f64),
                fmt_count(self.received_bytes as f64),
                self.exchange_secs
            ),
        );
        if self.round_interval_ms > 0 {
            out.kv(
                "offered",
                format!(
                    "{} (a negotiation every {} ms per pair)",
                    fmt_rate(self.offered_per_sec),
                    self.round_interval_ms
                ),
            );
        }
        out.kv("throughput", fmt_rate(self.messages_per_sec));
        out.kv("relay latency", fmt_latency(&self.relay_latency));
        out.kv("negotiation", fmt_latency(&self.negotiation));
        out.kv(
            "errors",
            format!(
                "out of order {}, not found {}, disconnects {}, connect failures {}",
                self.out_of_order,
                self.not_found,
                fmt_tally(&self.disconnects),
                fmt_tally(&self.errors)
            ),
        );
    }
}

mod peers;
mod setup;
mod wire;

use peers::{Plan, callee, caller};
use setup::{connect, register};

/// Runs the `rtc` scenario.
pub async fn run(ctx: &Ctx, args: &RtcArgs) -> Result<RtcSummary, RtcError> {
    if !args.prefix.is_empty() && (!args.prefix.starts_with('/') || args.prefix.ends_with('/')) {
        return Err(RtcError::Args(
            "--prefix must be empty or start with '/' and not end with '/'".into(),
        ));
    }
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let plan = Arc::new(Plan {
        rounds: args.rounds,
        candidates: args.candidates,
        offer: size(args.offer_size),
        answer: size(args.answer_size),
        candidate: size(args.candidate_size),
        interval: Duration::from_millis(args.round_interval_ms),
        idle: secs(args.idle_timeout),
    });
    let authority = ctx.target.authority().to_owned();
    let connect_uri: Uri = format!("ws://{authority}{}/v1/connect", args.prefix)
        .parse()
        .map_err(|e: http::uri::InvalidUri| NetError::InvalidUrl {
            url: authority.clone(),
            reason: e.to_string(),
        })?;
    let progress = ctx.progress.clone();
    let run_id = format!("{:08x}", payload::now_ns() as u32 ^ std::process::id());
    let users = args.pairs * 2;
    let name = |i: u64| {
        format!(
            "bench-{run_id}-{}{}",
            i / 2,
            if i.is_multiple_of(2) { "a" } else { "b" }
        )
    };
    let permits = Arc::new(Semaphore::new(ctx.common.connect_concurrency().max(1)));

    progress.set_phase("register");
    let started = Instant::now();
    let mut cookies = vec![String::new(); users as usize];
    let mut tasks = JoinSet::new();
    for i in 0..users {
        let (dialer, authority, prefix, name) = (
            ctx.dialer.clone(),
            authority.clone(),
            args.prefix.clone(),
            name(i),
        );
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, register(&dialer, &authority, &prefix, &name).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let Ok((i, cookie)) = done else {
            return Err(RtcError::Args("a registration task panicked".into()));
        };
        cookies[i as usize] = cookie?;
    }
    let register_secs = started.elapsed().as_secs_f64();

    progress.set_phase("connect");
    let started = Instant::now();
    let mut conns: Vec<Option<WsConn>> = (0..users).map(|_| None).collect();
    let mut errors = Tally::default();
    let mut tasks = JoinSet::new();
    for (i, cookie) in cookies.iter().enumerate() {
        let (dialer, uri, cookie) = (ctx.dialer.clone(), connect_uri.clone(), cookie.clone());
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, connect(&dialer, &uri, &cookie).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, Ok(ws))) => {
                Progress::add(&progress.connected, 1);
                conns[i] = Some(ws);
            }
            Ok((_, Err(e))) => {
                Progress::add(&progress.connect_failed, 1);
                errors.add(e.label());
            }
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = conns.iter().filter(|c| c.is_some()).count() as u64;

    progress.set_phase("exchange");
    let started = Instant::now();
    let mut sides = JoinSet::new();
    let mut conns = conns.into_iter();
    for pair in 0..args.pairs {
        let (Some(a), Some(b)) = (conns.next().flatten(), conns.next().flatten()) else {
            continue;
        };
        let stream = (pair % u64::from(u16::MAX)) as u16;
        let phase = plan.interval.mul_f64(pair as f64 / args.pairs as f64);
        sides.spawn(caller(
            a,
            name(pair * 2 + 1),
            plan.clone(),
            progress.clone(),
            stream,
            phase,
        ));
        sides.spawn(callee(
            b,
            name(pair * 2),
            plan.clone(),
            progress.clone(),
            stream,
        ));
    }
    let mut relay = Latency::precise();
    let mut negotiation = Latency::precise();
    let mut disconnects = Tally::default();
    let (mut received, mut received_bytes, mut out_of_order, mut not_found) = (0, 0, 0, 0);
    let mut exchange_secs = 0.0f64;
    while let Some(done) = sides.join_next().await {
        let side = match done {
            Ok(side) => side,
            Err(e) => {
                errors.add(format!("task: {e}"));
                continue;
            }
        };
        exchange_secs = exchange_secs.max(
            side.finished
                .saturating_duration_since(started)
                .as_secs_f64(),
        );
        received += side.received;
        received_bytes += side.received_bytes;
        out_of_order += side.out_of_order;
        not_found += side.not_found;
        relay.merge(&side.relay);
        negotiation.merge(&side.negotiation);
        if side.end != End::Done {
            disconnects.add(side.end.label());
            Progress::add(&progress.disconnected, 1);
        }
    }
    progress.set_phase("done");
    let expected = args.pairs * args.rounds * 2 * (1 + args.candidates);
    Ok(RtcSummary {
        pairs: args.pairs,
        rounds: args.rounds,
        candidates: args.candidates,
        sizes: [args.offer_size, args.answer_size, args.candidate_size],
        round_interval_ms: args.round_interval_ms,
        offered_per_sec: if args.round_interval_ms > 0 {
            (args.pairs * 2 * (1 + args.candidates)) as f64 * 1000.0 / args.round_interval_ms as f64
        } else {
            0.0
        },
        register_secs,
        connect_secs,
        connected,
        expected,
        received,
        received_bytes,
        out_of_order,
        not_found,
        exchange_secs,
        messages_per_sec: if exchange_secs > 0.0 {
            received as f64 / exchange_secs
        } else {
            0.0
        },
        relay_latency: relay.summary(),
        negotiation: negotiation.summary(),
        disconnects,
        errors,
    })
}
