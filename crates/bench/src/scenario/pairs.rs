//! `pairs`: short-lived two-member channels through the pairing service
//! (channelserver protocol), the way Firefox Accounts device pairing uses it.
//!
//! `--channels` slots run at once; each slot runs `--rounds` channels one
//! after another. A channel's life:
//!
//! 1. the creator opens `{prefix}/v1/ws/` and reads its first frame,
//!    `{"channelid":"<22 chars>","link":"{prefix}/v1/ws/<id>"}`;
//! 2. the joiner opens `{prefix}/v1/ws/<id>` and must get the same frame
//!    (setup latency: creator's connect → joiner's `channelid` frame);
//! 3. `--exchanges` messages alternate creator → joiner → creator …; each is
//!    sent when the previous one has arrived (a closed loop, like the TLS
//!    handshake the real clients run through the channel), and arrives as
//!    `{"message":"<text>","sender":{…}}` at the other member;
//! 4. both members close with 1000 and wait for the server's Close.
//!
//! A message's text is `--size` characters of the base64url alphabet, like
//! the real client's TLS records: the bench's 24-character hex stamp (slot,
//! sequence number, send time; see [`crate::payload`]) followed by a filler
//! that depends on the round and the sequence number, so the receiver can
//! check the whole text, not only the stamp.
//!
//! Measured: channels created per second (both members have the `channelid`
//! frame), messages relayed per second, relay latency (send → arrival; one
//! clock, both members are in this process) and setup latency. Checked: every
//! message arrives exactly once, in order, intact, at the other member; both
//! closes are answered with 1000; nothing else is closed, refused or lost.
//!
//! With `--interval-ms M` a slot works to a clock that ticks every `M` ms:
//! round `r`'s channel is set up from tick `r·E` on (E = `--exchanges`) and
//! its messages are due at ticks `r·E + 1 … r·E + E` (closing and the next
//! setup happen right after the last one arrives). That offers
//! `channels × 1000 / M` messages and `channels × 1000 / (M × E)` channels a
//! second. The slots' clocks start at phases spread over one channel's life
//! (`E × M`), so setups are as evenly spread in time as messages. A message
//! whose predecessor arrived late goes out at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_websockets::{CloseCode, Message};

use super::{Ctx, End, close_politely};
use crate::cli::secs;
use crate::net::{Dialer, NetError, WsConn};
use crate::payload::{self, HEADER_LEN, Stamp};
use crate::progress::Progress;
use crate::report::{Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, Tally};

/// `pairs` options.
#[derive(Debug, Clone, Args)]
pub struct PairsArgs {
    /// Channels open at once (two connections each).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=30_000))]
    pub channels: u64,
    /// Channels each slot creates, one after another.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Messages per channel, alternating creator → joiner → creator … (the
    /// server's default `max_exchanges` is 10; one more ends the channel with
    /// 4429).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub exchanges: u64,
    /// Characters per message (base64url alphabet; at least 24).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(24..=60_000))]
    pub size: u64,
    /// Send a slot's messages this many milliseconds apart (0: each as soon
    /// as the previous one arrived). Offers `channels × 1000 / interval`
    /// messages a second.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub interval_ms: u64,
    /// The pairing service's mount prefix (`--url` gives host and port; the
    /// native server mounts it at the root).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Give up on a channel when a frame it waits for does not come within
    /// this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
}

/// Why the run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    /// The arguments do not work together.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// The pairing service could not be reached.
    #[error("pairing service at {url}")]
    Net {
        /// The create URL.
        url: String,
        /// What failed.
        source: NetError,
    },
    /// The first connection did not get a `channelid` frame.
    #[error("pairing service at {url}: no channelid frame ({got})")]
    NotPairing {
        /// The create URL.
        url: String,
        /// What came instead.
        got: String,
    },
    /// A slot's task failed.
    #[error("a slot task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The result of a `pairs` run.
#[derive(Debug, Serialize)]
pub struct PairsSummary {
    /// Channels open at once.
    pub channels: u64,
    /// Channels per slot.
    pub rounds: u64,
    /// Messages per channel.
    pub exchanges: u64,
    /// Characters per message.
    pub size: u64,
    /// Milliseconds between a slot's messages (0: back to back).
    pub interval_ms: u64,
    /// The load that pacing offers, in messages a second (0: unpaced).
    pub offered_per_sec: f64,
    /// Channels the run tried to create: `channels × rounds`.
    pub attempted: u64,
    /// Channels created: both members got the `channelid` frame.
    pub created: u64,
    /// Channels that relayed every message and closed cleanly.
    pub completed: u64,
    /// Messages the run should relay: `attempted × exchanges`.
    pub expected: u64,
    /// Messages that arrived once, in order and intact.
    pub relayed: u64,
    /// Bytes of the envelope frames that arrived.
    pub relayed_bytes: u64,
    /// Messages that never arrived (their channel failed first).
    pub missing: u64,
    /// Messages that arrived with a damaged `message` field.
    pub corrupt: u64,
    /// Messages that arrived again.
    pub duplicates: u64,
    /// Messages that arrived ahead of one still expected.
    pub out_of_order: u64,
    /// Text frames that were neither the expected first frame nor a relay
    /// envelope of this channel.
    pub unexpected: u64,
    /// Seconds from the first connect to the last slot's end.
    pub run_secs: f64,
    /// `created / run_secs`.
    pub channels_per_sec: f64,
    /// `relayed / run_secs`.
    pub exchanges_per_sec: f64,
    /// Send → arrival of every relayed message.
    pub relay_latency: LatencySummary,
    /// Creator's connect → the joiner's `channelid` frame, per channel.
    pub setup_latency: LatencySummary,
    /// Close codes the server sent, by code (1000 answers the bench's own
    /// closes; anything else ended a channel).
    pub close_codes: Tally,
    /// Channels that failed, by stage and cause.
    pub errors: Tally,
}

impl PairsSummary {
    /// Server closes with a code other than 1000.
    pub fn abnormal_closes(&self) -> u64 {
        self.close_codes
            .iter()
            .filter(|(code, _)| *code != "1000")
            .map(|(_, n)| n)
            .sum()
    }
}

impl Summary for PairsSummary {
    fn scenario(&self) -> &'static str {
        "pairs"
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.created < self.attempted {
            out.push(format!(
                "{} of {} channels not created",
                self.attempted - self.created,
                self.attempted
            ));
        }
        if self.completed < self.created {
            out.push(format!(
                "{} of {} created channels did not complete",
                self.created - self.completed,
                self.created
            ));
        }
        if self.relayed < self.expected {
            out.push(format!(
                "{} of {} messages not relayed intact",
                self.expected - self.relayed,
                self.expected
            ));
        }
        for (n, what) in [
            (self.corrupt, "corrupt messages"),
            (self.duplicates, "duplicate messages"),
            (self.out_of_order, "messages out of order"),
            (self.unexpected, "unexpected frames"),
            (self.abnormal_closes(), "closes other than 1000"),
        ] {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        }
        out
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "shape",
            format!(
                "{} channels at once × {} rounds, {} messages of {} B each",
                self.channels, self.rounds, self.exchanges, self.size
            ),
        );
        out.kv(
            "channels",
            format!(
                "{} of {} created, {} completed in {:.2} s",
                fmt_count(self.created as f64),
                fmt_count(self.attempted as f64),
                fmt_count(self.completed as f64),
                self.run_secs
            ),
        );
        out.kv(
            "relayed",
            format!(
                "{} of {} messages ({} bytes)",
                fmt_count(self.relayed as f64),
                fmt_count(self.expected as f64),
                fmt_count(self.relayed_bytes as f64),
            ),
        );
        if self.interval_ms > 0 {
            out.kv(
                "offered",
                format!(
                    "{} (a message every {} ms per channel)",
                    fmt_rate(self.offered_per_sec),
                    self.interval_ms
                ),
            );
        }
        out.kv(
            "throughput",
            format!(
                "{} channels, {} messages",
                fmt_rate(self.channels_per_sec),
                fmt_rate(self.exchanges_per_sec)
            ),
        );
        out.kv("relay latency", fmt_latency(&self.relay_latency));
        out.kv("setup latency", fmt_latency(&self.setup_latency));
        out.kv("close codes", fmt_tally(&self.close_codes));
        out.kv(
            "errors",
            format!(
                "missing {}, corrupt {}, duplicates {}, out of order {}, unexpected {}, channels failed: {}",
                self.missing,
                self.corrupt,
                self.duplicates,
                self.out_of_order,
                self.unexpected,
                fmt_tally(&self.errors)
            ),
        );
    }
}

/// The base64url alphabet the filler cycles through.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The filler byte at position `at` (counted from the start of the text) of
/// message `seq` in round `round`.
#[inline]
fn filler(round: u64, seq: u32, at: usize) -> u8 {
    let start = round.wrapping_mul(31).wrapping_add(u64::from(seq) * 5) as usize;
    ALPHABET[start.wrapping_add(at) % ALPHABET.len()]
}

/// The text of message `stamp.seq` of round `round`: `size` characters.
fn message_text(stamp: Stamp, round: u64, size: usize) -> String {
    let mut bytes = vec![0u8; size.max(HEADER_LEN)];
    // The buffer is at least HEADER_LEN long and the bench clock stays below
    // 2^48 ns (78 hours): encoding cannot fail.
    let _ = payload::encode_into(&mut bytes, stamp);
    for (at, b) in bytes.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = filler(round, stamp.seq, at);
    }
    // Hex digits and the base64url alphabet are ASCII.
    String::from_utf8(bytes).unwrap_or_default()
}

/// What a received message text carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// A stamp, and the text is exactly what was sent.
    Intact(Stamp),
    /// A stamp, but the rest of the text is not what was sent.
    Damaged(Stamp),
    /// No bench stamp at all.
    Foreign,
}

/// Checks a received message text against what round `round` sent for its
/// stamp, `size` characters long.
fn check_text(text: &str, round: u64, size: usize) -> Text {
    let Ok(stamp) = payload::decode(text.as_bytes()) else {
        return Text::Foreign;
    };
    let bytes = text.as_bytes();
    let intact = bytes.len() == size
        && bytes
            .iter()
            .enumerate()
            .skip(HEADER_LEN)
            .all(|(at, &b)| b == filler(round, stamp.seq, at));
    if intact {
        Text::Intact(stamp)
    } else {
        Text::Damaged(stamp)
    }
}

/// The channel id announced by a first frame
/// `{"channelid":"<id>","link":"<prefix>/v1/ws/<id>"}`, if the frame is one:
/// 22 base64url characters, and a link that ends in `/v1/ws/<id>`.
fn hello_channel(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"channelid\":\"")?;
    let (id, tail) = rest.split_at(rest.find('"')?);
    let link = tail.strip_prefix("\",\"link\":\"")?.strip_suffix("\"}")?;
    let well_formed = id.len() == 22 && id.bytes().all(|b| ALPHABET.contains(&b));
    (well_formed && link.strip_suffix(id)?.ends_with("/v1/ws/")).then_some(id)
}

/// The `message` field of a relay envelope
/// `{"message":"<text>","sender":{…}}`, if the frame is one whose text needs
/// no JSON unescaping (the bench's never does). `sender` is not inspected.
fn envelope_message(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"message\":\"")?;
    let (message, tail) = rest.split_at(rest.find('"')?);
    // An escaped quote stops the search early and leaves a backslash behind.
    if message.contains('\\') {
        return None;
    }
    (tail.starts_with("\",\"sender\":{") && tail.ends_with("}}")).then_some(message)
}

/// Sizes and counts shared by every slot.
#[derive(Debug)]
struct Plan {
    rounds: u64,
    exchanges: u64,
    size: usize,
    interval: Duration,
    idle: Duration,
    create: Uri,
    /// `ws://authority{prefix}/v1/ws/`, to which the id is appended.
    join_base: String,
}

/// What one slot observed over its rounds.
#[derive(Debug)]
struct SlotStats {
    created: u64,
    completed: u64,
    relayed: u64,
    relayed_bytes: u64,
    corrupt: u64,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    relay: Latency,
    setup: Latency,
    close_codes: Tally,
    errors: Tally,
    finished: Instant,
}

impl SlotStats {
    fn new() -> Self {
        SlotStats {
            created: 0,
            completed: 0,
            relayed: 0,
            relayed_bytes: 0,
            corrupt: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            relay: Latency::compact(),
            setup: Latency::compact(),
            close_codes: Tally::default(),
            errors: Tally::default(),
            finished: Instant::now(),
        }
    }

    /// Counts a server close code if `end` is one.
    fn note_end(&mut self, end: &End) {
        if let End::Closed(code) = end {
            self.close_codes.add(code.to_string());
        }
    }
}

/// Why a channel was abandoned: the stage and the cause.
#[derive(Debug)]
struct Failure {
    stage: &'static str,
    cause: String,
}

impl Failure {
    fn new(stage: &'static str, cause: impl Into<String>) -> Self {
        Failure {
            stage,
            cause: cause.into(),
        }
    }

    fn label(&self) -> String {
        format!("{}: {}", self.stage, self.cause)
    }
}

/// Reads the next text frame (pings are answered by the library), or how
/// the connection ended; `End::Stopped` means nothing came within `idle`.
async fn next_text(ws: &mut WsConn, idle: Duration) -> Result<Message, End> {
    loop {
        match tokio::time::timeout(idle, ws.next()).await {
            Err(_) => return Err(End::Stopped),
            Ok(None) => return Err(End::Eof),
            Ok(Some(Err(e))) => return Err(End::from_error(&e)),
            Ok(Some(Ok(m))) => {
                if let Some(end) = End::from_message(&m) {
                    return Err(end);
                }
                if m.is_text() {
                    return Ok(m);
                }
            }
        }
    }
}

/// The label of an end while waiting: `timeout` instead of `stopped`.
fn end_label(end: &End) -> String {
    match end {
        End::Stopped => "timeout".to_owned(),
        other => other.label(),
    }
}

/// Opens a WebSocket, holding a connect permit meanwhile.
async fn dial(
    dialer: &Dialer,
    permits: &Semaphore,
    uri: &Uri,
    progress: &Progress,
) -> Result<WsConn, NetError> {
    let result = {
        let _permit = permits.acquire().await;
        dialer.websocket(uri).await
    };
    match result {
        Ok((ws, _)) => {
            Progress::add(&progress.connected, 1);
            Ok(ws)
        }
        Err(e) => {
            Progress::add(&progress.connect_failed, 1);
            Err(e)
        }
    }
}

/// Reads a member's first frame; returns the channel id it announces.
async fn hello(
    ws: &mut WsConn,
    idle: Duration,
    stage: &'static str,
    st: &mut SlotStats,
) -> Result<String, Failure> {
    let m = next_text(ws, idle).await.map_err(|end| {
        st.note_end(&end);
        Failure::new(stage, end_label(&end))
    })?;
    let text = m.as_text().unwrap_or_default();
    match hello_channel(text) {
        Some(id) => Ok(id.to_owned()),
        None => {
            st.unexpected += 1;
            Err(Failure::new(stage, "no channelid frame"))
        }
    }
}

/// How a member's close went: the server's close code, or how it ended
/// otherwise, and the stray frames read meanwhile.
#[derive(Debug)]
struct Closed {
    result: Result<u16, End>,
    duplicates: u64,
    unexpected: u64,
}

/// Sends Close 1000 and reads until the server's Close (or `timeout`),
/// classifying any text frame still arriving.
async fn close(ws: &mut WsConn, timeout: Duration) -> Closed {
    let mut closed = Closed {
        result: Err(End::Stopped),
        duplicates: 0,
        unexpected: 0,
    };
    if let Err(e) = ws
        .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
        .await
    {
        closed.result = Err(End::from_error(&e));
        return closed;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(next) => next,
        };
        match next {
            None => {
                closed.result = Err(End::Eof);
                break;
            }
            Some(Err(e)) => {
                closed.result = Err(End::from_error(&e));
                break;
            }
            Some(Ok(m)) => {
                if let Some((code, _)) = m.as_close() {
                    closed.result = Ok(u16::from(code));
                    break;
                }
                if let Some(text) = m.as_text() {
                    // Every message was delivered already: a stamped envelope
                    // now is one of them again.
                    let stamped = envelope_message(text)
                        .is_some_and(|message| payload::decode(message.as_bytes()).is_ok());
                    if stamped {
                        closed.duplicates += 1;
                    } else {
                        closed.unexpected += 1;
                    }
                }
            }
        }
    }
    closed
}

/// The `k`-th tick of a paced slot, `t0 + k·interval` (`None`: unpaced, or
/// beyond any clock). Round `r` sets up its channel from tick `r·E` on and
/// sends its messages at ticks `r·E + 1 ..= r·E + E`.
fn due(t0: Instant, interval: Duration, k: u64) -> Option<Instant> {
    if interval.is_zero() {
        return None;
    }
    let k = u32::try_from(k).ok()?;
    t0.checked_add(interval.checked_mul(k)?)
}

/// One slot: `plan.rounds` channels one after another.
#[derive(Debug)]
struct Slot {
    plan: Arc<Plan>,
    dialer: Arc<Dialer>,
    permits: Arc<Semaphore>,
    progress: Arc<Progress>,
    stream: u16,
    /// This slot's tick 0 (paced runs): its first channel's setup.
    t0: Instant,
    /// Messages this slot has sent or skipped, over all rounds (message `k`
    /// is due at tick `k + 1`).
    k: u64,
}

impl Slot {
    async fn run(mut self) -> SlotStats {
        let mut st = SlotStats::new();
        for round in 0..self.plan.rounds {
            // For later rounds this tick is the previous channel's last
            // message's, already past; the first round waits for its phase.
            if let Some(at) = due(self.t0, self.plan.interval, round * self.plan.exchanges) {
                tokio::time::sleep_until(at.into()).await;
            }
            if let Err(failure) = self.channel(round, &mut st).await {
                st.errors.add(failure.label());
                Progress::add(&self.progress.errors, 1);
            }
            // Keep the schedule: a failed channel's unsent messages are skipped.
            self.k = (round + 1) * self.plan.exchanges;
        }
        st.finished = Instant::now();
        st
    }

    /// One channel: create, join, exchange, close.
    async fn channel(&mut self, round: u64, st: &mut SlotStats) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let started = Instant::now();
        let mut creator = dial(&self.dialer, &self.permits, &plan.create, &self.progress)
            .await
            .map_err(|e| Failure::new("create", e.label()))?;
        let id = match hello(&mut creator, plan.idle, "create", st).await {
            Ok(id) => id,
            Err(f) => {
                close_politely(&mut creator, Duration::from_secs(1)).await;
                return Err(f);
            }
        };
        let join_uri: Uri = match format!("{}{id}", plan.join_base).parse() {
            Ok(uri) => uri,
            Err(_) => {
                close_politely(&mut creator, Duration::from_secs(1)).await;
                return Err(Failure::new("join", "channel id is not a URL path"));
            }
        };
        let joined = async {
            let mut joiner = dial(&self.dialer, &self.permits, &join_uri, &self.progress)
                .await
                .map_err(|e| Failure::new("join", e.label()))?;
            match hello(&mut joiner, plan.idle, "join", st).await {
                Ok(got) if got == id => Ok(joiner),
                Ok(_) => {
                    close_politely(&mut joiner, Duration::from_secs(1)).await;
                    Err(Failure::new("join", "channelid differs from the creator's"))
                }
                Err(f) => {
                    close_politely(&mut joiner, Duration::from_secs(1)).await;
                    Err(f)
                }
            }
        }
        .await;
        let mut joiner = match joined {
            Ok(joiner) => joiner,
            Err(f) => {
                close_politely(&mut creator, Duration::from_secs(1)).await;
                return Err(f);
            }
        };
        st.setup.record(started.elapsed());
        st.created += 1;

        let exchanged = self.exchange(round, &mut creator, &mut joiner, st).await;
        if let Err(f) = exchanged {
            tokio::join!(
                close_politely(&mut creator, Duration::from_secs(1)),
                close_politely(&mut joiner, Duration::from_secs(1))
            );
            return Err(f);
        }

        let (a, b) = tokio::join!(
            close(&mut creator, plan.idle),
            close(&mut joiner, plan.idle)
        );
        let mut clean = true;
        let mut first_failure = None;
        for c in [a, b] {
            st.duplicates += c.duplicates;
            st.unexpected += c.unexpected;
            match c.result {
                Ok(code) => {
                    st.close_codes.add(code.to_string());
                    if code != 1000 {
                        clean = false;
                        first_failure.get_or_insert(format!("close {code}"));
                    }
                }
                Err(end) => {
                    clean = false;
                    first_failure.get_or_insert(end_label(&end));
                }
            }
            if c.duplicates + c.unexpected > 0 {
                clean = false;
                first_failure.get_or_insert("stray frames".to_owned());
            }
        }
        match first_failure {
            Some(cause) if !clean => Err(Failure::new("close", cause)),
            _ => {
                st.completed += 1;
                Ok(())
            }
        }
    }

    /// Sends the channel's messages, alternating directions, each after the
    /// previous one arrived (and not before it is due, when paced).
    async fn exchange(
        &mut self,
        round: u64,
        creator: &mut WsConn,
        joiner: &mut WsConn,
        st: &mut SlotStats,
    ) -> Result<(), Failure> {
        let plan = self.plan.clone();
        for i in 0..plan.exchanges {
            let seq = u32::try_from(i).unwrap_or(u32::MAX);
            let (from, to) = if i % 2 == 0 {
                (&mut *creator, &mut *joiner)
            } else {
                (&mut *joiner, &mut *creator)
            };
            if let Some(due) = due(self.t0, plan.interval, self.k + 1) {
                tokio::time::sleep_until(due.into()).await;
            }
            self.k += 1;
            let stamp = Stamp {
                stream: self.stream,
                seq,
                sent_ns: payload::now_ns(),
            };
            from.send(Message::text(message_text(stamp, round, plan.size)))
                .await
                .map_err(|e| Failure::new("send", end_label(&End::from_error(&e))))?;
            Progress::add(&self.progress.sent, 1);
            self.receive(to, round, seq, st).await?;
        }
        Ok(())
    }

    /// Waits for message `seq` on `ws`, checking everything that arrives.
    async fn receive(
        &self,
        ws: &mut WsConn,
        round: u64,
        seq: u32,
        st: &mut SlotStats,
    ) -> Result<(), Failure> {
        loop {
            let m = next_text(ws, self.plan.idle).await.map_err(|end| {
                st.note_end(&end);
                if end.is_disconnect() {
                    Progress::add(&self.progress.disconnected, 1);
                }
                Failure::new("relay", end_label(&end))
            })?;
            let arrived = payload::now_ns();
            let frame = m.as_text().unwrap_or_default();
            let Some(message) = envelope_message(frame) else {
                st.unexpected += 1;
                continue;
            };
            let (stamp, intact) = match check_text(message, round, self.plan.size) {
                Text::Intact(stamp) => (stamp, true),
                Text::Damaged(stamp) => (stamp, false),
                Text::Foreign => {
                    st.unexpected += 1;
                    continue;
                }
            };
            if stamp.stream != self.stream {
                // Another slot's message: delivered to the wrong channel.
                st.unexpected += 1;
                continue;
            }
            if stamp.seq < seq {
                st.duplicates += 1;
                continue;
            }
            if stamp.seq > seq {
                st.out_of_order += 1;
                return Err(Failure::new("relay", "out of order"));
            }
            if !intact {
                st.corrupt += 1;
                return Err(Failure::new("relay", "corrupt message"));
            }
            st.relayed += 1;
            st.relayed_bytes += frame.len() as u64;
            st.relay.record_ns(arrived.saturating_sub(stamp.sent_ns));
            Progress::add(&self.progress.received, 1);
            return Ok(());
        }
    }
}

/// Creates one channel to check that the pairing service answers at
/// `create`, then closes it.
async fn preflight(ctx: &Ctx, create: &Uri, idle: Duration) -> Result<(), PairsError> {
    let url = create.to_string();
    let (mut ws, _) = ctx
        .dialer
        .websocket(create)
        .await
        .map_err(|source| PairsError::Net {
            url: url.clone(),
            source,
        })?;
    let got = match next_text(&mut ws, idle).await {
        Ok(m) => {
            let text = m.as_text().unwrap_or_default();
            if hello_channel(text).is_some() {
                None
            } else {
                Some(text.chars().take(80).collect())
            }
        }
        Err(end) => Some(end_label(&end)),
    };
    close_politely(&mut ws, Duration::from_secs(1)).await;
    match got {
        None => Ok(()),
        Some(got) => Err(PairsError::NotPairing { url, got }),
    }
}

/// Runs the `pairs` scenario.
pub async fn run(ctx: &Ctx, args: &PairsArgs) -> Result<PairsSummary, PairsError> {
    if !args.prefix.is_empty() && (!args.prefix.starts_with('/') || args.prefix.ends_with('/')) {
        return Err(PairsError::Args(
            "--prefix must be empty or start with '/' and not end with '/'".into(),
        ));
    }
    let authority = ctx.target.authority();
    let join_base = format!("ws://{authority}{}/v1/ws/", args.prefix);
    let create: Uri = join_base.parse().map_err(|e: http::uri::InvalidUri| {
        PairsError::Args(format!("{join_base} is not a URL: {e}"))
    })?;
    let idle = secs(args.idle_timeout);
    let plan = Arc::new(Plan {
        rounds: args.rounds,
        exchanges: args.exchanges,
        size: usize::try_from(args.size).unwrap_or(usize::MAX),
        interval: Duration::from_millis(args.interval_ms),
        idle,
        create,
        join_base,
    });
    let progress = ctx.progress.clone();
    progress.set_phase("check");
    preflight(ctx, &plan.create, idle).await?;

    progress.set_phase("pairs");
    let permits = Arc::new(Semaphore::new(ctx.common.connect_concurrency().max(1)));
    let started = Instant::now();
    let mut slots = JoinSet::new();
    for slot in 0..args.channels {
        // Paced slots start at phases spread over one channel's life (E
        // intervals), so that channel setups, and not only messages, are
        // spread evenly in time instead of all slots changing channels in
        // the same interval.
        let life = plan
            .interval
            .checked_mul(u32::try_from(plan.exchanges).unwrap_or(u32::MAX))
            .unwrap_or(Duration::ZERO);
        let phase = life.mul_f64(slot as f64 / args.channels as f64);
        let slot = Slot {
            plan: plan.clone(),
            dialer: ctx.dialer.clone(),
            permits: permits.clone(),
            progress: progress.clone(),
            stream: (slot % (u64::from(u16::MAX) + 1)) as u16,
            t0: started.checked_add(phase).unwrap_or(started),
            k: 0,
        };
        slots.spawn(slot.run());
    }
    let mut total = SlotStats::new();
    total.relay = Latency::precise();
    total.setup = Latency::precise();
    let mut finished = started;
    while let Some(done) = slots.join_next().await {
        let st = done?;
        finished = finished.max(st.finished);
        total.created += st.created;
        total.completed += st.completed;
        total.relayed += st.relayed;
        total.relayed_bytes += st.relayed_bytes;
        total.corrupt += st.corrupt;
        total.duplicates += st.duplicates;
        total.out_of_order += st.out_of_order;
        total.unexpected += st.unexpected;
        total.relay.merge(&st.relay);
        total.setup.merge(&st.setup);
        total.close_codes.merge(&st.close_codes);
        total.errors.merge(&st.errors);
    }
    progress.set_phase("done");
    let run_secs = finished.duration_since(started).as_secs_f64();
    let per_sec = |n: u64| {
        if run_secs > 0.0 {
            n as f64 / run_secs
        } else {
            0.0
        }
    };
    let attempted = args.channels * args.rounds;
    let expected = attempted * args.exchanges;
    Ok(PairsSummary {
        channels: args.channels,
        rounds: args.rounds,
        exchanges: args.exchanges,
        size: args.size,
        interval_ms: args.interval_ms,
        offered_per_sec: if args.interval_ms > 0 {
            args.channels as f64 * 1000.0 / args.interval_ms as f64
        } else {
            0.0
        },
        attempted,
        created: total.created,
        completed: total.completed,
        expected,
        relayed: total.relayed,
        relayed_bytes: total.relayed_bytes,
        missing: expected.saturating_sub(total.relayed + total.corrupt),
        corrupt: total.corrupt,
        duplicates: total.duplicates,
        out_of_order: total.out_of_order,
        unexpected: total.unexpected,
        run_secs,
        channels_per_sec: per_sec(total.created),
        exchanges_per_sec: per_sec(total.relayed),
        relay_latency: total.relay.summary(),
        setup_latency: total.setup.summary(),
        close_codes: total.close_codes,
        errors: total.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "xdp7DlFoK9h6sMtcJJWTqg";

    #[test]
    fn hello_frames() {
        let hello = format!(r#"{{"channelid":"{ID}","link":"/v1/ws/{ID}"}}"#);
        assert_eq!(hello_channel(&hello), Some(ID));
        let prefixed = format!(r#"{{"channelid":"{ID}","link":"/pair/v1/ws/{ID}"}}"#);
        assert_eq!(hello_channel(&prefixed), Some(ID));
        let bad = [
            format!(r#"{{"channelid":"{ID}","link":"/v1/ws/other"}}"#),
            format!(r#"{{"channelid":"{ID}x","link":"/v1/ws/{ID}x"}}"#),
            r#"{"channelid":"xdp7DlFoK9h6sMtcJJWT!g","link":"/v1/ws/xdp7DlFoK9h6sMtcJJWT!g"}"#
                .to_owned(),
            format!(r#"{{"link":"/v1/ws/{ID}","channelid":"{ID}"}}"#),
            format!(r#"{{"channelid":"{ID}","link":"/v1/ws/{ID}"}} "#),
            format!(r#"{{"channelid":"{ID}"}}"#),
            r#"{"message":"x","sender":{}}"#.to_owned(),
            String::new(),
        ];
        for frame in &bad {
            assert_eq!(hello_channel(frame), None, "{frame}");
        }
    }

    #[test]
    fn envelope_frames() {
        let cases = [
            (
                r#"{"message":"aGVsbG8","sender":{"remote":"127.0.0.1","ua":"x"}}"#,
                Some("aGVsbG8"),
            ),
            (r#"{"message":"","sender":{}}"#, Some("")),
            (r#"{"message":"a\"b","sender":{}}"#, None),
            (r#"{"message":"a\\b","sender":{}}"#, None),
            (r#"{"message":"abc"}"#, None),
            (r#"{"message":"abc","sender":{}"#, None),
            (r#"{"sender":{},"message":"abc"}"#, None),
            (r#"{"message":"abc","sender":"x"}"#, None),
            ("", None),
        ];
        for (frame, want) in cases {
            assert_eq!(envelope_message(frame), want, "{frame}");
        }
    }

    #[test]
    fn message_texts_are_base64url_and_check_out() {
        let stamp = Stamp {
            stream: 3,
            seq: 7,
            sent_ns: 123_456_789,
        };
        let text = message_text(stamp, 4, 200);
        assert_eq!(text.len(), 200);
        assert!(
            text.bytes()
                .all(|b| ALPHABET.contains(&b) || b.is_ascii_hexdigit())
        );
        assert_eq!(check_text(&text, 4, 200), Text::Intact(stamp));
        // What the server relays: the text inside an envelope, unchanged.
        let frame = format!(r#"{{"message":"{text}","sender":{{"remote":"127.0.0.1"}}}}"#);
        let relayed = envelope_message(&frame).expect("an envelope");
        assert_eq!(check_text(relayed, 4, 200), Text::Intact(stamp));
        // Another round's, a truncated, a changed text.
        assert_eq!(check_text(&text, 5, 200), Text::Damaged(stamp));
        assert_eq!(check_text(&text[..199], 4, 200), Text::Damaged(stamp));
        let mut changed = text.clone().into_bytes();
        changed[150] = if changed[150] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).expect("ASCII");
        assert_eq!(check_text(&changed, 4, 200), Text::Damaged(stamp));
        assert_eq!(check_text("not a bench message", 4, 200), Text::Foreign);
        // The smallest message is the stamp alone.
        let small = message_text(stamp, 0, 24);
        assert_eq!(check_text(&small, 0, 24), Text::Intact(stamp));
        // Consecutive messages differ in their filler too.
        let next = message_text(Stamp { seq: 8, ..stamp }, 4, 200);
        assert_ne!(text[HEADER_LEN..], next[HEADER_LEN..]);
    }

    #[test]
    fn paced_ticks() {
        let t0 = Instant::now();
        assert_eq!(due(t0, Duration::ZERO, 5), None, "unpaced");
        let ms = Duration::from_millis(45);
        assert_eq!(due(t0, ms, 0), Some(t0));
        assert_eq!(due(t0, ms, 11), Some(t0 + Duration::from_millis(495)));
        assert_eq!(due(t0, ms, u64::MAX), None, "beyond any clock");
    }

    fn summary() -> PairsSummary {
        PairsSummary {
            channels: 2,
            rounds: 2,
            exchanges: 10,
            size: 200,
            interval_ms: 0,
            offered_per_sec: 0.0,
            attempted: 4,
            created: 4,
            completed: 4,
            expected: 40,
            relayed: 40,
            relayed_bytes: 40 * 240,
            missing: 0,
            corrupt: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            run_secs: 1.0,
            channels_per_sec: 4.0,
            exchanges_per_sec: 40.0,
            relay_latency: LatencySummary::default(),
            setup_latency: LatencySummary::default(),
            close_codes: Tally::default(),
            errors: Tally::default(),
        }
    }

    #[test]
    fn failures_name_what_went_wrong() {
        let mut s = summary();
        s.close_codes.add_n("1000", 8);
        assert!(s.failures().is_empty(), "{:?}", s.failures());
        s.completed = 3;
        s.relayed = 31;
        s.close_codes.add_n("4429", 2);
        s.errors.add("relay: close 4429");
        assert_eq!(
            s.failures(),
            vec![
                "1 of 4 created channels did not complete".to_owned(),
                "9 of 40 messages not relayed intact".to_owned(),
                "2 closes other than 1000".to_owned(),
            ]
        );
        let text = crate::report::render(&s, false).expect("text");
        assert!(text.starts_with("pairs: FAIL ("), "{text}");
        assert!(text.contains("relay: close 4429 ×1"), "{text}");
    }
}
