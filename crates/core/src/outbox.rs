//! [`Outbox`]: the bounded queue between everything that sends to a connection
//! and the one task that writes to its socket.
//!
//! Producers ([`OutboxSender`], cheap to clone) never wait: [`OutboxSender::push`]
//! either queues the frame or reports why not. The overflow policy is
//! **disconnect**: a push that would exceed the message or byte bound closes the
//! outbox with [`Disconnect::SlowConsumer`]; the writer then flushes what was
//! already queued and sends the Close frame. Nothing is dropped silently.
//!
//! The consumer ([`OutboxReceiver`]) drains *everything* pending in one call, so
//! the writer can feed all of it to the socket and flush once (invariant 3).
//! A receiver can be handed to a new socket task (a resumed session keeps its
//! outbox while it has no socket).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::{Disconnect, Frame};

/// The bounds of one outbox. Both are enforced; whichever is hit first applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most frames queued at once.
    pub max_messages: usize,
    /// Most payload bytes queued at once.
    pub max_bytes: usize,
}

impl Default for OutboxLimits {
    /// 256 messages (Pinghub's per-connection queue) and 4 MiB.
    fn default() -> Self {
        OutboxLimits {
            max_messages: 256,
            max_bytes: 4 << 20,
        }
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

#[derive(Debug)]
struct State {
    queue: VecDeque<Frame>,
    bytes: usize,
    closed: Option<Disconnect>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
    limits: OutboxLimits,
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                closed: None,
            }),
            notify: Notify::new(),
            limits,
        });
        (
            OutboxSender {
                shared: shared.clone(),
            },
            OutboxReceiver { shared },
        )
    }
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
        let limits = self.shared.limits;
        if st.queue.len() >= limits.max_messages || st.bytes + frame.len() > limits.max_bytes {
            st.closed = Some(Disconnect::SlowConsumer);
            drop(st);
            self.shared.notify.notify_one();
            return Err(PushError::Overflow);
        }
        let was_empty = st.queue.is_empty();
        st.bytes += frame.len();
        st.queue.push_back(frame);
        drop(st);
        // The writer only waits when it found the queue empty, so only the
        // empty -> non-empty transition needs a wake-up.
        if was_empty {
            self.shared.notify.notify_one();
        }
        Ok(())
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
                if !st.queue.is_empty() {
                    buf.extend(st.queue.drain(..));
                    st.bytes = 0;
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
        let n = st.queue.len();
        buf.extend(st.queue.drain(..));
        st.bytes = 0;
        n
    }

    /// A sender for this outbox.
    pub fn sender(&self) -> OutboxSender {
        OutboxSender {
            shared: self.shared.clone(),
        }
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
        OutboxLimits {
            max_messages: m,
            max_bytes: b,
        }
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
