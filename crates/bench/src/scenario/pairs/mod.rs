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
use http::Uri;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Ctx, close_politely, next_text};
use crate::cli::secs;
use crate::net::NetError;
use crate::report::{Failures, Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, Tally};

mod slot;
mod text;

use slot::{Plan, Slot, SlotStats, end_label};
use text::hello_channel;

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
        Failures::default()
            .short_of(self.created, self.attempted, "channels not created")
            .short_of(
                self.completed,
                self.created,
                "created channels did not complete",
            )
            .short_of(self.relayed, self.expected, "messages not relayed intact")
            .count(self.corrupt, "corrupt messages")
            .count(self.duplicates, "duplicate messages")
            .count(self.out_of_order, "messages out of order")
            .count(self.unexpected, "unexpected frames")
            .count(self.abnormal_closes(), "closes other than 1000")
            .into_vec()
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
