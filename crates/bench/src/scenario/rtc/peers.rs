//! The two ends of an `rtc` pair: the caller runs the negotiations, the
//! callee answers them; each keeps what it observed in a [`Side`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_websockets::Message;

use super::super::{End, close_politely, next_text};
use super::wire::{Arrival, Kind, classify, message};
use crate::net::WsConn;
use crate::payload::{self, Stamp};
use crate::progress::Progress;
use crate::stats::Latency;

/// Sizes and counts shared by every connection.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) rounds: u64,
    pub(super) candidates: u64,
    pub(super) offer: usize,
    pub(super) answer: usize,
    pub(super) candidate: usize,
    pub(super) interval: Duration,
    pub(super) idle: Duration,
}

/// What one connection observed.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) received: u64,
    pub(super) received_bytes: u64,
    pub(super) out_of_order: u64,
    pub(super) not_found: u64,
    pub(super) relay: Latency,
    pub(super) negotiation: Latency,
    pub(super) end: End,
    /// When its last message arrived (or it gave up), before closing.
    pub(super) finished: Instant,
}

impl Side {
    pub(super) fn new() -> Self {
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
    pub(super) fn arrive(
        &mut self,
        text: &str,
        next_seq: &mut u32,
        progress: &Progress,
    ) -> Option<Kind> {
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

pub(super) async fn send(ws: &mut WsConn, m: Message, progress: &Progress) -> Result<(), End> {
    ws.send(m).await.map_err(|e| End::from_error(&e))?;
    Progress::add(&progress.sent, 1);
    Ok(())
}

/// The caller: per round, an offer and candidates out, then wait for the
/// answer and the callee's candidates.
pub(super) async fn caller(
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
                let m = next_text(&mut ws, plan.idle).await?;
                if side
                    .arrive(m.as_text().unwrap_or_default(), &mut in_seq, &progress)
                    .is_some()
                {
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
pub(super) async fn callee(
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
            let m = next_text(&mut ws, plan.idle).await?;
            let Some(kind) = side.arrive(m.as_text().unwrap_or_default(), &mut in_seq, &progress)
            else {
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
