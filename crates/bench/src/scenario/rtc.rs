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
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Uri, header};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_websockets::{ClientBuilder, Limits, Message};

use super::{Ctx, End, close_politely};
use crate::cli::secs;
use crate::net::{Dialer, NetError, WsConn};
use crate::payload::{self, HEADER_LEN, Stamp};
use crate::progress::Progress;
use crate::report::{Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
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
        let mut out = Vec::new();
        if self.received < self.expected {
            out.push(format!(
                "{} of {} messages missing",
                self.expected - self.received,
                self.expected
            ));
        }
        if self.out_of_order > 0 {
            out.push(format!("{} messages out of order", self.out_of_order));
        }
        if self.not_found > 0 {
            out.push(format!("{} TARGET_NOT_FOUND answers", self.not_found));
        }
        if self.disconnects.total() > 0 {
            out.push(format!(
                "{} connections ended early",
                self.disconnects.total()
            ));
        }
        if self.errors.total() > 0 {
            out.push(format!("{} connections failed", self.errors.total()));
        }
        out
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

/// The message kinds of a negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Offer,
    Answer,
    Candidate,
}

impl Kind {
    fn wire(self) -> &'static str {
        match self {
            Kind::Offer => "video-offer",
            Kind::Answer => "video-answer",
            Kind::Candidate => "ice-candidate",
        }
    }
}

/// Sizes and counts shared by every connection.
#[derive(Debug)]
struct Plan {
    rounds: u64,
    candidates: u64,
    offer: usize,
    answer: usize,
    candidate: usize,
    interval: Duration,
    idle: Duration,
}

/// `{"target":…,"type":…,"payload":{"t":"<stamp>","d":"<padding>"}}` with a
/// payload of `size` bytes.
fn message(target: &str, kind: Kind, size: usize, stamp: Stamp) -> Message {
    // `{"t":"` + stamp + `","d":"` + padding + `"}`
    const OVERHEAD: usize = 6 + HEADER_LEN + 7 + 2;
    let mut stamp_text = [0u8; HEADER_LEN];
    // The buffer is exactly HEADER_LEN: encoding cannot fail.
    let _ = payload::encode_into(&mut stamp_text, stamp);
    let pad = size.saturating_sub(OVERHEAD);
    let mut s = String::with_capacity(size + target.len() + 48);
    s.push_str("{\"target\":\"");
    s.push_str(target);
    s.push_str("\",\"type\":\"");
    s.push_str(kind.wire());
    s.push_str("\",\"payload\":{\"t\":\"");
    s.push_str(std::str::from_utf8(&stamp_text).unwrap_or("000000000000000000000000"));
    s.push_str("\",\"d\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}}");
    Message::text(s)
}

/// What an arriving frame is.
#[derive(Debug, PartialEq, Eq)]
enum Arrival {
    Relayed(Kind, Stamp),
    NotFound,
    Other,
}

fn classify(text: &str) -> Arrival {
    if text.contains("\"type\":\"TARGET_NOT_FOUND\"") {
        return Arrival::NotFound;
    }
    let kind = if text.contains("\"type\":\"video-offer\"") {
        Kind::Offer
    } else if text.contains("\"type\":\"video-answer\"") {
        Kind::Answer
    } else if text.contains("\"type\":\"ice-candidate\"") {
        Kind::Candidate
    } else {
        return Arrival::Other;
    };
    const MARK: &str = "\"payload\":{\"t\":\"";
    let Some(at) = text.find(MARK) else {
        return Arrival::Other;
    };
    match text.as_bytes().get(at + MARK.len()..).map(payload::decode) {
        Some(Ok(stamp)) => Arrival::Relayed(kind, stamp),
        _ => Arrival::Other,
    }
}

/// What one connection observed.
#[derive(Debug)]
struct Side {
    received: u64,
    received_bytes: u64,
    out_of_order: u64,
    not_found: u64,
    relay: Latency,
    negotiation: Latency,
    end: End,
    /// When its last message arrived (or it gave up), before closing.
    finished: Instant,
}

impl Side {
    fn new() -> Self {
        Side {
            received: 0,
            received_bytes: 0,
            out_of_order: 0,
            not_found: 0,
            relay: Latency::compact(),
            negotiation: Latency::compact(),
            end: End::Done,
            finished: Instant::now(),
        }
    }

    /// Records an arrival; returns its kind if it was a relayed message.
    fn arrive(&mut self, text: &str, next_seq: &mut u32, progress: &Progress) -> Option<Kind> {
        match classify(text) {
            Arrival::Relayed(kind, stamp) => {
                self.received += 1;
                self.received_bytes += text.len() as u64;
                self.relay
                    .record_ns(payload::now_ns().saturating_sub(stamp.sent_ns));
                if stamp.seq != *next_seq {
                    self.out_of_order += 1;
                }
                *next_seq = stamp.seq.wrapping_add(1);
                Progress::add(&progress.received, 1);
                Some(kind)
            }
            Arrival::NotFound => {
                self.not_found += 1;
                Progress::add(&progress.errors, 1);
                None
            }
            Arrival::Other => None,
        }
    }
}

/// Reads the next text frame, or how the connection ended.
async fn next_text(ws: &mut WsConn, idle: Duration) -> Result<String, End> {
    loop {
        match tokio::time::timeout(idle, ws.next()).await {
            Err(_) => return Err(End::Stopped),
            Ok(None) => return Err(End::Eof),
            Ok(Some(Err(e))) => return Err(End::from_error(&e)),
            Ok(Some(Ok(m))) => {
                if let Some(end) = End::from_message(&m) {
                    return Err(end);
                }
                if let Some(t) = m.as_text() {
                    return Ok(t.to_owned());
                }
            }
        }
    }
}

async fn send(ws: &mut WsConn, m: Message, progress: &Progress) -> Result<(), End> {
    ws.send(m).await.map_err(|e| End::from_error(&e))?;
    Progress::add(&progress.sent, 1);
    Ok(())
}

/// The caller: per round, an offer and candidates out, then wait for the
/// answer and the callee's candidates.
async fn caller(
    mut ws: WsConn,
    peer: String,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    stream: u16,
    phase: Duration,
) -> Side {
    let mut side = Side::new();
    let (mut out_seq, mut in_seq) = (0u32, 0u32);
    let per_round = 1 + plan.candidates;
    let outcome: Result<(), End> = async {
        // Paced pairs start at spread-out phases, so the load is even.
        let t0 = Instant::now() + phase;
        for round in 0..plan.rounds {
            if !plan.interval.is_zero() {
                let due = t0 + plan.interval * u32::try_from(round).unwrap_or(u32::MAX);
                tokio::time::sleep_until(due.into()).await;
            }
            let started = Instant::now();
            let stamp = |seq: &mut u32| {
                let s = Stamp {
                    stream,
                    seq: *seq,
                    sent_ns: payload::now_ns(),
                };
                *seq = seq.wrapping_add(1);
                s
            };
            send(
                &mut ws,
                message(&peer, Kind::Offer, plan.offer, stamp(&mut out_seq)),
                &progress,
            )
            .await?;
            for _ in 0..plan.candidates {
                let m = message(&peer, Kind::Candidate, plan.candidate, stamp(&mut out_seq));
                send(&mut ws, m, &progress).await?;
            }
            let mut got = 0;
            while got < per_round {
                let text = next_text(&mut ws, plan.idle).await?;
                if side.arrive(&text, &mut in_seq, &progress).is_some() {
                    got += 1;
                }
            }
            side.negotiation.record(started.elapsed());
        }
        Ok(())
    }
    .await;
    side.finished = Instant::now();
    if let Err(end) = outcome {
        side.end = end;
    }
    close_politely(&mut ws, Duration::from_secs(2)).await;
    side
}

/// The callee: answers every offer at once with an answer and candidates,
/// until it has everything the caller sends.
async fn callee(
    mut ws: WsConn,
    peer: String,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    stream: u16,
) -> Side {
    let mut side = Side::new();
    let (mut out_seq, mut in_seq) = (0u32, 0u32);
    let expected = plan.rounds * (1 + plan.candidates);
    let outcome: Result<(), End> = async {
        let mut got = 0;
        while got < expected {
            let text = next_text(&mut ws, plan.idle).await?;
            let Some(kind) = side.arrive(&text, &mut in_seq, &progress) else {
                continue;
            };
            got += 1;
            if kind != Kind::Offer {
                continue;
            }
            let stamp = |seq: &mut u32| {
                let s = Stamp {
                    stream,
                    seq: *seq,
                    sent_ns: payload::now_ns(),
                };
                *seq = seq.wrapping_add(1);
                s
            };
            send(
                &mut ws,
                message(&peer, Kind::Answer, plan.answer, stamp(&mut out_seq)),
                &progress,
            )
            .await?;
            for _ in 0..plan.candidates {
                let m = message(&peer, Kind::Candidate, plan.candidate, stamp(&mut out_seq));
                send(&mut ws, m, &progress).await?;
            }
        }
        Ok(())
    }
    .await;
    side.finished = Instant::now();
    if let Err(end) = outcome {
        side.end = end;
    }
    // The caller may still be reading our last candidates: let it close first.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    side
}

/// Registers `name`; returns the `user_username=…` cookie pair.
async fn register(
    dialer: &Dialer,
    authority: &str,
    prefix: &str,
    name: &str,
) -> Result<String, RtcError> {
    let fail = |reason: String| RtcError::Register {
        name: name.to_owned(),
        reason,
    };
    let body = format!("username={name}");
    let request = format!(
        "POST {prefix}/v1/register HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut tcp = dialer.tcp().await?;
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, RtcError>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| fail("timed out".into()))??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&reply) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(fail("unreadable reply".into())),
    };
    let body = String::from_utf8_lossy(&reply[head_len..]);
    if parsed.code != Some(200) || !body.contains("\"SUCCESS\"") {
        return Err(fail(format!("{:?} {body}", parsed.code)));
    }
    parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| fail("no Set-Cookie".into()))
}

/// Opens the signaling WebSocket with `cookie`.
async fn connect(dialer: &Dialer, uri: &Uri, cookie: &str) -> Result<WsConn, NetError> {
    let dial = async {
        let tcp = dialer.tcp().await?;
        let value = HeaderValue::from_str(cookie).map_err(|_| NetError::InvalidUrl {
            url: uri.to_string(),
            reason: "the cookie is not a header value".into(),
        })?;
        let builder = ClientBuilder::from_uri(uri.clone())
            .limits(Limits::unlimited())
            .add_header(header::COOKIE, value)
            .map_err(NetError::Handshake)?;
        match builder.connect_on(tcp).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_websockets::Error::Upgrade(
                tokio_websockets::upgrade::Error::DidNotSwitchProtocols(code),
            )) => Err(NetError::Status(code)),
            Err(e) => Err(NetError::Handshake(e)),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), dial)
        .await
        .map_err(|_| NetError::Timeout("connect"))?
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_requested_payload_size_and_round_trip() {
        let stamp = Stamp {
            stream: 7,
            seq: 42,
            sent_ns: 123_456,
        };
        let m = message("bob", Kind::Offer, 4000, stamp);
        let text = m.as_text().expect("text");
        let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(v["target"], "bob");
        assert_eq!(v["type"], "video-offer");
        assert_eq!(
            serde_json::to_string(&v["payload"]).expect("payload").len(),
            4000
        );
        // What the server forwards: the same payload after the envelope.
        let payload = &text[text.find("\"payload\":").expect("payload key") + 10..text.len() - 1];
        let forwarded = format!(
            "{{\"originator\":\"alice\",\"target\":\"bob\",\"type\":\"video-offer\",\"payload\":{payload}}}\n"
        );
        assert_eq!(classify(&forwarded), Arrival::Relayed(Kind::Offer, stamp));
        assert_eq!(
            classify("{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n"),
            Arrival::NotFound
        );
        assert_eq!(classify("{}"), Arrival::Other);
    }
}
