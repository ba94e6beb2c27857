//! [`Outbox`]: the bounded queue between everything that sends to a connection
//! and the one task that writes to its socket.
//!
//! Producers ([`OutboxSender`], cheap to clone) never wait: [`OutboxSender::push`]
//! either queues the frame or reports why not. The overflow policy is
//! **disconnect a slow consumer**, judged on the client, not on the server:
//! - The **memory cap** ([`OutboxLimits::max_messages`], [`OutboxLimits::max_bytes`])
//!   is absolute: a push that would exceed it closes the outbox with
//!   [`Disconnect::SlowConsumer`] at once, whatever the reason for the backlog.
//!   It is sized to hold seconds of a busy channel, so a writer task that has
//!   merely not been scheduled yet on a busy machine never reaches it.
//! - Below the cap, a client is a slow consumer only when it **does not read**:
//!   its socket has not been writable for [`OutboxLimits::slow_after`] *and*
//!   at least [`OutboxLimits::slow_bytes`] are queued behind the stalled write.
//!   The socket writer judges that (it is the one that knows the socket is not
//!   writable), with [`OutboxReceiver::slow`].
//!
//! Either way the writer then flushes what was already queued (if the socket
//! takes it) and sends the Close frame. Nothing is dropped silently.
//!
//! The consumer ([`OutboxReceiver`]) drains *everything* pending in one call, so
//! the writer can feed all of it to the socket and flush once (invariant 3).
//! A receiver can be handed to a new socket task (a resumed session keeps its
//! outbox while it has no socket).
//!
//! Two refinements for channels with history:
//! - **View.** A [`Frame::Logged`] is queued as given and rendered when drained:
//!   as its plain text ([`OutboxView::Plain`], the default) or as its envelope
//!   ([`OutboxView::Envelope`]), so one shared frame serves both kinds of client.
//! - **Hold.** [`OutboxSender::hold`] keeps what is pushed from the writer until
//!   [`OutboxSender::release`] puts a prefix (the replayed history) in front of
//!   it, dropping logged frames the prefix already covers (offset at or below a
//!   floor: the prefix's last offset, or the log's top when it was read). The
//!   floor stays: a copy of a covered message that arrives late (a bus delivering
//!   after the history read) is dropped too. A subscriber can so be subscribed
//!   live *before* its history is read, and get both with no gap and no
//!   duplicate at the seam. An outbox with a floor must take logged frames of
//!   one log only (offsets of different logs do not compare).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::{Disconnect, Frame};

/// The bounds of one outbox (see the module docs for the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Memory cap: most frames queued at once.
    pub max_messages: usize,
    /// Memory cap: most payload bytes queued at once.
    pub max_bytes: usize,
    /// A client whose socket is not writable is a slow consumer once this many
    /// payload bytes are queued behind the stalled write...
    pub slow_bytes: usize,
    /// ...and the socket has not been writable for this long.
    pub slow_after: Duration,
}

impl OutboxLimits {
    /// A memory cap of `max_messages` and `max_bytes`, with the default
    /// not-reading judgement ([`Self::DEFAULT_SLOW_BYTES`], [`Self::DEFAULT_SLOW_AFTER`]).
    pub const fn capped(max_messages: usize, max_bytes: usize) -> Self {
        OutboxLimits {
            max_messages,
            max_bytes,
            slow_bytes: Self::DEFAULT_SLOW_BYTES,
            slow_after: Self::DEFAULT_SLOW_AFTER,
        }
    }

    /// Default memory cap in messages: 16,384, two seconds of a channel
    /// publishing 8,000 messages a second (Pinghub kept 256, 32 ms of it).
    pub const DEFAULT_MAX_MESSAGES: usize = 16_384;
    /// Default memory cap in bytes: 16 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
    /// Default backlog behind an unwritable socket that marks a client not reading: 256 KiB.
    pub const DEFAULT_SLOW_BYTES: usize = 256 << 10;
    /// Default time a socket may stay unwritable with that backlog: 2 s.
    pub const DEFAULT_SLOW_AFTER: Duration = Duration::from_secs(2);
}

impl Default for OutboxLimits {
    /// 16,384 messages and 16 MiB at most; not reading when 256 KiB wait
    /// behind a socket that has not been writable for 2 s.
    fn default() -> Self {
        OutboxLimits::capped(Self::DEFAULT_MAX_MESSAGES, Self::DEFAULT_MAX_BYTES)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// This push overflowed the outbox; it is now closed as a slow consumer.
    #[error("outbox full; connection closed as a slow consumer")]
    Overflow,
    /// The outbox was already closed (the connection is ending).
    #[error("outbox closed")]
    Closed,
}

/// Why [`OutboxReceiver::slow`] judged a client a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowness {
    /// The outbox passed its memory cap.
    Overflowed,
    /// [`OutboxLimits::slow_bytes`] are queued behind a stalled write.
    Behind,
}

/// How a connection wants [`Frame::Logged`] messages rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxView {
    /// The plain text (what clients that know nothing of logs expect).
    #[default]
    Plain,
    /// The envelope with offset and epoch.
    Envelope,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Frame>,
    bytes: usize,
    closed: Option<Disconnect>,
    held: bool,
    /// Logged frames at or below this offset are covered by a replay (see `release`).
    floor: Option<u64>,
    /// Leading frames of the queue outside the bounds (a released prefix);
    /// `bytes` counts only the others.
    exempt: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
    limits: OutboxLimits,
    view: OutboxView,
}

impl Shared {
    fn render(&self, frame: Frame) -> Frame {
        match frame {
            Frame::Logged(l) => Frame::Text(match self.view {
                OutboxView::Plain => l.text().clone(),
                OutboxView::Envelope => l.envelope().clone(),
            }),
            f => f,
        }
    }

    /// Moves the queue, rendered, into `buf`.
    fn drain_into(&self, st: &mut State, buf: &mut Vec<Frame>) -> usize {
        let n = st.queue.len();
        buf.extend(st.queue.drain(..).map(|f| self.render(f)));
        st.bytes = 0;
        st.exempt = 0;
        n
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (every mutation is a single push, drain or assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Constructor namespace for an outbox pair.
#[derive(Debug)]
pub struct Outbox;

impl Outbox {
    /// Creates an outbox with `limits`, returning its producer and consumer halves.
    pub fn bounded(limits: OutboxLimits) -> (OutboxSender, OutboxReceiver) {
        Outbox::with_view(limits, OutboxView::Plain)
    }

    /// Creates an outbox with `limits` that renders logged frames as `view`.
    pub fn with_view(limits: OutboxLimits, view: OutboxView) -> (OutboxSender, OutboxReceiver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                closed: None,
                held: false,
                floor: None,
                exempt: 0,
            }),
            notify: Notify::new(),
            limits,
            view,
        });
        (
            OutboxSender {
                shared: shared.clone(),
            },
            OutboxReceiver { shared },
        )
    }
}

/// Whether `frame` is a logged message a replay already covered.
fn covered(frame: &Frame, floor: Option<u64>) -> bool {
    matches!((frame.offset(), floor), (Some(o), Some(fl)) if o <= fl)
}

/// The producing half: push frames, or close the connection with a reason.
#[derive(Debug, Clone)]
pub struct OutboxSender {
    shared: Arc<Shared>,
}

impl OutboxSender {
    /// Queues `frame` without waiting.
    ///
    /// On overflow the outbox closes with [`Disconnect::SlowConsumer`] and
    /// returns [`PushError::Overflow`] (once; later pushes get `Closed`).
    pub fn push(&self, frame: Frame) -> Result<(), PushError> {
        let mut st = self.shared.lock();
        if st.closed.is_some() {
            return Err(PushError::Closed);
        }
        if covered(&frame, st.floor) {
            return Ok(());
        }
        let limits = self.shared.limits;
        if st.queue.len() - st.exempt >= limits.max_messages
            || st.bytes + frame.len() > limits.max_bytes
        {
            st.closed = Some(Disconnect::SlowConsumer);
            drop(st);
            self.shared.notify.notify_one();
            return Err(PushError::Overflow);
        }
        let slow = limits.slow_bytes;
        // The writer waits for the queue to become non-empty, or (stalled on
        // its socket) for the backlog to reach `slow_bytes`: only those two
        // transitions need a wake-up.
        let wake = (st.queue.is_empty() && !st.held)
            || (st.bytes < slow && st.bytes + frame.len() >= slow);
        st.bytes += frame.len();
        st.queue.push_back(frame);
        drop(st);
        if wake {
            self.shared.notify.notify_one();
        }
        Ok(())
    }

    /// Holds what is pushed from now on back from the writer (see the module docs).
    pub fn hold(&self) {
        self.shared.lock().held = true;
    }

    /// Ends a [`hold`](Self::hold): `prefix` goes first, then the held frames
    /// that are not logged at or below the floor, the greater of `floor` and the
    /// prefix's last offset. Logged frames pushed later are held to the same
    /// floor (see the module docs).
    ///
    /// The prefix is not held to the bounds (its size is the caller's, for
    /// example a configured history length), not even until the writer has
    /// drained it; what follows it is, as ever.
    pub fn release(&self, prefix: Vec<Frame>, floor: u64) {
        let mut st = self.shared.lock();
        let floor = prefix
            .iter()
            .rev()
            .find_map(Frame::offset)
            .map_or(floor, |last| last.max(floor));
        st.floor = Some(floor);
        let held = std::mem::take(&mut st.queue);
        st.exempt = prefix.len();
        st.queue = prefix.into();
        st.queue
            .extend(held.into_iter().filter(|f| !covered(f, Some(floor))));
        st.bytes = st.queue.iter().skip(st.exempt).map(Frame::len).sum();
        st.held = false;
        let wake = !st.queue.is_empty();
        drop(st);
        if wake {
            self.shared.notify.notify_one();
        }
    }

    /// Closes the outbox with `reason`. Frames already queued are still written
    /// first. The first close wins; later ones are ignored.
    pub fn close(&self, reason: Disconnect) {
        let mut st = self.shared.lock();
        if st.closed.is_none() {
            st.closed = Some(reason);
            drop(st);
            self.shared.notify.notify_one();
        }
    }

    /// Whether the outbox is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Whether `other` is a handle to the same outbox.
    pub fn same_outbox(&self, other: &OutboxSender) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// The consuming half, owned by the task that writes to the socket.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

impl OutboxReceiver {
    /// Waits until something is pending, then moves every queued frame into `buf`.
    ///
    /// Returns `Err(reason)` once the outbox is closed *and* empty: frames queued
    /// before the close are always handed out first. Cancel-safe.
    pub async fn recv_many(&mut self, buf: &mut Vec<Frame>) -> Result<(), Disconnect> {
        loop {
            {
                let mut st = self.shared.lock();
                if !st.queue.is_empty() && !st.held {
                    self.shared.drain_into(&mut st, buf);
                    return Ok(());
                }
                if let Some(reason) = &st.closed {
                    return Err(reason.clone());
                }
            }
            self.shared.notify.notified().await;
        }
    }

    /// Moves every queued frame into `buf` without waiting; returns how many.
    pub fn try_recv_many(&mut self, buf: &mut Vec<Frame>) -> usize {
        let mut st = self.shared.lock();
        if st.held {
            return 0;
        }
        self.shared.drain_into(&mut st, buf)
    }

    /// A sender for this outbox.
    pub fn sender(&self) -> OutboxSender {
        OutboxSender {
            shared: self.shared.clone(),
        }
    }

    /// Waits until the outbox overflows (closed with
    /// [`Disconnect::SlowConsumer`]), however much is still queued: the
    /// writer stuck on a client that does not read learns it at once instead
    /// of at its write timeout. Cancel-safe; it takes no wake-up that
    /// [`recv_many`](Self::recv_many) needs (that one checks the queue first).
    pub async fn overflowed(&self) {
        self.slow(false).await;
    }

    /// The verdict on a client while its writer is stalled on the socket:
    /// resolves with [`Slowness::Overflowed`] once the outbox overflowed and,
    /// if `judge_backlog`, with [`Slowness::Behind`] once at least
    /// [`OutboxLimits::slow_bytes`] are queued (the bounded part of the queue;
    /// a released prefix does not count). The socket writer asks for the
    /// backlog only after its socket has not been writable for
    /// [`OutboxLimits::slow_after`]. One future waits for both, so no
    /// wake-up is lost between two waiters. Cancel-safe; it takes no wake-up
    /// that [`recv_many`](Self::recv_many) needs.
    pub async fn slow(&self, judge_backlog: bool) -> Slowness {
        loop {
            {
                let st = self.shared.lock();
                if st.closed == Some(Disconnect::SlowConsumer) {
                    return Slowness::Overflowed;
                }
                if judge_backlog && st.bytes >= self.shared.limits.slow_bytes {
                    return Slowness::Behind;
                }
            }
            self.shared.notify.notified().await;
        }
    }

    /// This outbox's bounds.
    pub fn limits(&self) -> OutboxLimits {
        self.shared.limits
    }

    /// The close reason, if the outbox is closed.
    pub fn closed_reason(&self) -> Option<Disconnect> {
        self.shared.lock().closed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(m: usize, b: usize) -> OutboxLimits {
        OutboxLimits::capped(m, b)
    }

    #[tokio::test]
    async fn slow_judges_the_backlog_behind_a_stalled_write_only_when_asked() {
        let l = OutboxLimits {
            slow_bytes: 10,
            ..limits(1000, 1 << 20)
        };
        let (tx, mut rx) = Outbox::bounded(l);
        let mut buf = Vec::new();
        tx.push(Frame::text("in flight")).unwrap();
        rx.recv_many(&mut buf).await.unwrap();
        // The writer is now "writing" `buf`; what arrives meanwhile is the backlog.
        let wait = std::time::Duration::from_millis(20);
        tx.push(Frame::text("12345")).unwrap();
        assert!(
            tokio::time::timeout(wait, rx.slow(true)).await.is_err(),
            "5 bytes are not 10"
        );
        let waiter = tokio::spawn(async move {
            let verdict = rx.slow(true).await;
            (verdict, rx)
        });
        tokio::task::yield_now().await;
        tx.push(Frame::text("67890")).unwrap();
        let (verdict, mut rx) = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken by the push that crossed the mark")
            .unwrap();
        assert_eq!(verdict, Slowness::Behind);
        // Not asked about the backlog: only an overflow is a verdict.
        assert!(
            tokio::time::timeout(wait, rx.slow(false)).await.is_err(),
            "a backlog alone is no overflow"
        );
        // The wake-up for the writer's next drain is still there.
        buf.clear();
        rx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn default_limits_hold_seconds_of_a_busy_channel() {
        let d = OutboxLimits::default();
        assert!(d.max_messages >= 8_000, "{d:?}");
        assert!(d.max_bytes >= d.slow_bytes);
        assert_eq!(d.slow_after, OutboxLimits::DEFAULT_SLOW_AFTER);
    }

    #[tokio::test]
    async fn overflowed_wakes_a_stuck_writer_and_steals_no_wake_up() {
        let (tx, mut rx) = Outbox::bounded(limits(2, 1 << 20));
        let mut buf = Vec::new();
        // Not overflowed: waits (a push alone does not end it).
        tx.push(Frame::text("a")).unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), rx.overflowed())
                .await
                .is_err()
        );
        rx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 1);
        tx.push(Frame::text("b")).unwrap();
        tx.push(Frame::text("c")).unwrap();
        assert_eq!(tx.push(Frame::text("d")), Err(PushError::Overflow));
        rx.overflowed().await;
        // What was queued is still handed out, then the reason.
        buf.clear();
        rx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 2);
        assert_eq!(rx.recv_many(&mut buf).await, Err(Disconnect::SlowConsumer));
    }

    #[tokio::test]
    async fn drains_everything_pending_in_one_call_in_order() {
        let (tx, mut rx) = Outbox::bounded(limits(10, 1000));
        for i in 0..5 {
            tx.push(Frame::text(format!("m{i}"))).unwrap();
        }
        let mut buf = Vec::new();
        rx.recv_many(&mut buf).await.unwrap();
        let got: Vec<_> = buf.iter().map(|f| f.payload().clone()).collect();
        assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn overflow_by_count_closes_as_slow_consumer_after_queued_frames() {
        let (tx, mut rx) = Outbox::bounded(limits(2, 1000));
        tx.push(Frame::text("a")).unwrap();
        tx.push(Frame::text("b")).unwrap();
        assert_eq!(tx.push(Frame::text("c")), Err(PushError::Overflow));
        assert_eq!(tx.push(Frame::text("d")), Err(PushError::Closed));
        let mut buf = Vec::new();
        rx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 2);
        assert_eq!(rx.recv_many(&mut buf).await, Err(Disconnect::SlowConsumer));
    }

    #[tokio::test]
    async fn overflow_by_bytes_closes_as_slow_consumer() {
        let (tx, _rx) = Outbox::bounded(limits(100, 10));
        tx.push(Frame::text("12345")).unwrap();
        assert_eq!(tx.push(Frame::text("123456")), Err(PushError::Overflow));
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn draining_frees_room() {
        let (tx, mut rx) = Outbox::bounded(limits(1, 100));
        let mut buf = Vec::new();
        for _ in 0..10 {
            tx.push(Frame::text("x")).unwrap();
            rx.recv_many(&mut buf).await.unwrap();
        }
        assert_eq!(buf.len(), 10);
    }

    #[tokio::test]
    async fn first_close_wins() {
        let (tx, mut rx) = Outbox::bounded(OutboxLimits::default());
        tx.close(Disconnect::Shutdown);
        tx.close(Disconnect::TooBig);
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf).await, Err(Disconnect::Shutdown));
    }

    fn logged(offset: u64) -> Frame {
        fn render(offset: u64, _: &str, text: &[u8]) -> bytes::Bytes {
            format!("{offset}:{}", std::str::from_utf8(text).unwrap()).into()
        }
        Frame::logged(offset, "e".into(), format!("m{offset}").into(), render)
    }

    #[tokio::test]
    async fn the_view_renders_logged_frames() {
        let (tx, mut plain) = Outbox::bounded(limits(10, 1000));
        let (etx, mut env) = Outbox::with_view(limits(10, 1000), OutboxView::Envelope);
        tx.push(logged(3)).unwrap();
        etx.push(logged(3)).unwrap();
        let mut buf = Vec::new();
        plain.recv_many(&mut buf).await.unwrap();
        env.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf, [Frame::text("m3"), Frame::text("3:m3")]);
    }

    #[tokio::test]
    async fn release_puts_the_prefix_first_and_drops_what_it_covers() {
        let (tx, mut rx) = Outbox::bounded(limits(10, 1000));
        tx.hold();
        for o in [4, 5, 6] {
            tx.push(logged(o)).unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(rx.try_recv_many(&mut buf), 0, "held frames wait");
        tx.release(vec![logged(2), logged(3), logged(4), logged(5)], 0);
        // A late copy of a replayed message is dropped; what follows is not.
        tx.push(logged(5)).unwrap();
        tx.push(logged(7)).unwrap();
        rx.recv_many(&mut buf).await.unwrap();
        let got: Vec<_> = buf.iter().map(|f| f.payload().clone()).collect();
        assert_eq!(got, ["m2", "m3", "m4", "m5", "m6", "m7"]);
    }

    #[tokio::test]
    async fn a_released_prefix_does_not_count_against_the_bounds() {
        let (tx, mut rx) = Outbox::bounded(limits(2, 100));
        tx.hold();
        tx.push(logged(11)).unwrap();
        tx.release((1..=10).map(logged).collect(), 0);
        tx.push(logged(12)).unwrap();
        assert_eq!(
            tx.push(logged(13)),
            Err(PushError::Overflow),
            "2 after the prefix"
        );
        let mut buf = Vec::new();
        rx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 12);
    }

    #[tokio::test]
    async fn an_empty_replay_still_holds_to_the_logs_top() {
        let (tx, mut rx) = Outbox::bounded(limits(10, 1000));
        tx.hold();
        tx.push(logged(8)).unwrap();
        tx.push(logged(9)).unwrap();
        tx.push(Frame::text("plain")).unwrap();
        tx.release(vec![Frame::text("control")], 8);
        tx.push(logged(8)).unwrap();
        tx.push(logged(10)).unwrap();
        let mut buf = Vec::new();
        rx.recv_many(&mut buf).await.unwrap();
        let got: Vec<_> = buf.iter().map(|f| f.payload().clone()).collect();
        assert_eq!(got, ["control", "m9", "plain", "m10"]);
    }

    #[tokio::test]
    async fn waiting_receiver_is_woken_by_a_push_from_another_task() {
        let (tx, mut rx) = Outbox::bounded(OutboxLimits::default());
        let waiter = tokio::spawn(async move {
            let mut buf = Vec::new();
            rx.recv_many(&mut buf).await.map(|()| buf.len())
        });
        tokio::task::yield_now().await;
        tx.push(Frame::text("wake")).unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(1));
    }
}
