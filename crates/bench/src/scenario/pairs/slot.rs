//! One `pairs` slot: a creator and a joiner running channel after channel
//! (dial, greeting, the closed-loop exchange, both closes), with the stats
//! it keeps and the clock of a paced slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use tokio::sync::Semaphore;
use tokio_websockets::{CloseCode, Message};

use super::super::{End, close_politely, next_text};
use super::text::{Text, check_text, envelope_message, hello_channel, message_text};
use crate::net::{Dialer, NetError, WsConn};
use crate::payload::{self, Stamp};
use crate::progress::Progress;
use crate::stats::{Latency, Tally};

/// Sizes and counts shared by every slot.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) rounds: u64,
    pub(super) exchanges: u64,
    pub(super) size: usize,
    pub(super) interval: Duration,
    pub(super) idle: Duration,
    pub(super) create: Uri,
    /// `ws://authority{prefix}/v1/ws/`, to which the id is appended.
    pub(super) join_base: String,
}

/// What one slot observed over its rounds.
#[derive(Debug)]
pub(super) struct SlotStats {
    pub(super) created: u64,
    pub(super) completed: u64,
    pub(super) relayed: u64,
    pub(super) relayed_bytes: u64,
    pub(super) corrupt: u64,
    pub(super) duplicates: u64,
    pub(super) out_of_order: u64,
    pub(super) unexpected: u64,
    pub(super) relay: Latency,
    pub(super) setup: Latency,
    pub(super) close_codes: Tally,
    pub(super) errors: Tally,
    pub(super) finished: Instant,
}

impl SlotStats {
    pub(super) fn new() -> Self {
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
    pub(super) fn note_end(&mut self, end: &End) {
        if let End::Closed(code) = end {
            self.close_codes.add(code.to_string());
        }
    }
}

/// Why a channel was abandoned: the stage and the cause.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) stage: &'static str,
    pub(super) cause: String,
}

impl Failure {
    pub(super) fn new(stage: &'static str, cause: impl Into<String>) -> Self {
        Failure {
            stage,
            cause: cause.into(),
        }
    }

    pub(super) fn label(&self) -> String {
        format!("{}: {}", self.stage, self.cause)
    }
}

/// The label of an end while waiting: `timeout` instead of `stopped`.
pub(super) fn end_label(end: &End) -> String {
    match end {
        End::Stopped => "timeout".to_owned(),
        other => other.label(),
    }
}

/// Opens a WebSocket, holding a connect permit meanwhile.
pub(super) async fn dial(
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
pub(super) async fn hello(
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
pub(super) struct Closed {
    pub(super) result: Result<u16, End>,
    pub(super) duplicates: u64,
    pub(super) unexpected: u64,
}

/// Sends Close 1000 and reads until the server's Close (or `timeout`),
/// classifying any text frame still arriving.
pub(super) async fn close(ws: &mut WsConn, timeout: Duration) -> Closed {
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
pub(super) fn due(t0: Instant, interval: Duration, k: u64) -> Option<Instant> {
    if interval.is_zero() {
        return None;
    }
    let k = u32::try_from(k).ok()?;
    t0.checked_add(interval.checked_mul(k)?)
}

/// One slot: `plan.rounds` channels one after another.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) plan: Arc<Plan>,
    pub(super) dialer: Arc<Dialer>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) progress: Arc<Progress>,
    pub(super) stream: u16,
    /// This slot's tick 0 (paced runs): its first channel's setup.
    pub(super) t0: Instant,
    /// Messages this slot has sent or skipped, over all rounds (message `k`
    /// is due at tick `k + 1`).
    pub(super) k: u64,
}

impl Slot {
    pub(super) async fn run(mut self) -> SlotStats {
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
    pub(super) async fn channel(&mut self, round: u64, st: &mut SlotStats) -> Result<(), Failure> {
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
    pub(super) async fn exchange(
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
    pub(super) async fn receive(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_ticks() {
        let t0 = Instant::now();
        assert_eq!(due(t0, Duration::ZERO, 5), None, "unpaced");
        let ms = Duration::from_millis(45);
        assert_eq!(due(t0, ms, 0), Some(t0));
        assert_eq!(due(t0, ms, 11), Some(t0 + Duration::from_millis(495)));
        assert_eq!(due(t0, ms, u64::MAX), None, "beyond any clock");
    }
}
