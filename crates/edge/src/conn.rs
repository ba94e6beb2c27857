//! One accepted connection's bookkeeping: what phase of HTTP it is in (for
//! [`HttpTimeouts`]), and the limit places it holds.
//!
//! - [`Watched`] wraps the connection's stream. While the connection speaks
//!   HTTP it notes when the first byte of a request head arrives; it also
//!   owns the connection's [`CapGuard`] and [`IpGuard`], so they are released
//!   when the socket closes, after a WebSocket upgrade too.
//! - [`Activity`] is shared by the wrapper, the request service and the
//!   watchdog in [`crate::listener`]; [`Activity::deadline`] says when the
//!   connection must be closed and why, from that state alone.
//! - [`TimedBody`] ends a request body that stalls longer than
//!   [`HttpTimeouts::body`] while the handler waits for it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::limits::{CapGuard, HttpTimeouts, IpGuard};

/// Why the watchdog closed a connection (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The request head did not arrive in time.
    Header,
    /// A kept-alive connection sat idle too long.
    Idle,
    /// A request body stalled.
    Body,
}

impl Phase {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Header => "header",
            Phase::Idle => "idle",
            Phase::Body => "body",
        }
    }
}

/// What one connection is doing, as far as the timeouts care.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// False once the connection stops speaking HTTP (upgraded or done).
    http: AtomicBool,
    /// Requests whose handler has not answered yet.
    in_flight: AtomicU32,
    /// At least one request was answered.
    served: AtomicBool,
    /// Milliseconds after `epoch` + 1 at which the first byte of the current
    /// request head arrived; 0: none since the last answer.
    head_started: AtomicU64,
    /// Milliseconds after `epoch` at which the last answer was given.
    idle_since: AtomicU64,
    /// The per-address place, once the client's address is known.
    ip_guard: Mutex<Option<IpGuard>>,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            epoch: Instant::now(),
            http: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            ip_guard: Mutex::new(None),
        })
    }

    fn ms(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_millis() as u64
    }

    /// Bytes arrived from the client.
    fn read_some(&self) {
        if self.http.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            let at = self.ms(Instant::now()) + 1;
            self.head_started.store(at, Ordering::Relaxed);
        }
    }

    /// A request head was read and its handler called.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
    }

    /// The handler answered.
    pub fn request_done(&self) {
        self.idle_since
            .store(self.ms(Instant::now()), Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The connection no longer speaks HTTP (it was upgraded).
    pub fn http_ended(&self) {
        self.http.store(false, Ordering::Relaxed);
    }

    /// Whether the connection already holds a per-address place.
    pub fn has_ip_place(&self) -> bool {
        self.ip_guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Keeps `guard` for the connection's life.
    pub fn hold_ip_place(&self, guard: IpGuard) {
        *self.ip_guard.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }

    /// When the connection must be closed if nothing changes, and why;
    /// `None` while a handler runs (a stalled body is [`TimedBody`]'s
    /// business, and handlers bound their own waits).
    ///
    /// - never answered yet: the first head must be complete `header` after
    ///   the connection was accepted;
    /// - after an answer, once a byte of the next head arrived: `header` after
    ///   that byte;
    /// - after an answer, with nothing arriving: `idle` after the answer.
    pub fn deadline(&self, t: &HttpTimeouts) -> Option<(Instant, Phase)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.epoch + Duration::from_millis(ms) + d;
        if !self.served.load(Ordering::Relaxed) {
            return Some((at(0, t.header), Phase::Header));
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => Some((
                at(self.idle_since.load(Ordering::Relaxed), t.idle),
                Phase::Idle,
            )),
            started => Some((at(started - 1, t.header), Phase::Header)),
        }
    }
}

/// A connection's stream, watched: see the module documentation.
#[derive(Debug)]
pub struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
    _cap: Option<CapGuard>,
}

impl<S> Watched<S> {
    /// Wraps `io`; `cap` is released when this is dropped.
    pub fn new(io: S, activity: Arc<Activity>, cap: Option<CapGuard>) -> Self {
        Watched {
            io,
            activity,
            _cap: cap,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body stalled longer than [`HttpTimeouts::body`].
#[derive(Debug, thiserror::Error)]
#[error("request body stalled for more than {0:?}")]
pub struct BodyStalled(pub Duration);

/// A request body that fails with [`BodyStalled`] when the client sends
/// nothing for `timeout` while it is being read.
#[derive(Debug)]
pub struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed while a read waits; `None` until the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl TimedBody {
    /// Wraps `inner`.
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: None,
            waiting: false,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.waiting = false;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    sleep.as_mut().reset(deadline);
                    this.waiting = true;
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    metrics::counter!("switchboard_http_timeouts_total", "phase" => Phase::Body.label())
                        .increment(1);
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: HttpTimeouts = HttpTimeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        body: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase_of_the_connection() {
        let a = Activity::new();
        let t0 = Instant::now();
        // A new connection: the head is due 10 s after the accept, bytes or not.
        assert_eq!(a.deadline(&T), Some((t0 + T.header, Phase::Header)));
        tokio::time::advance(Duration::from_secs(3)).await;
        a.read_some();
        assert_eq!(a.deadline(&T), Some((t0 + T.header, Phase::Header)));
        // A handler runs: no deadline.
        a.request_started();
        assert_eq!(a.deadline(&T), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        a.request_done();
        let answered = Instant::now();
        assert_eq!(a.deadline(&T), Some((answered + T.idle, Phase::Idle)));
        // A byte of the next head: 10 s from that byte.
        tokio::time::advance(Duration::from_secs(20)).await;
        a.read_some();
        let byte = Instant::now();
        assert_eq!(a.deadline(&T), Some((byte + T.header, Phase::Header)));
        // After an upgrade reads no longer count.
        a.request_started();
        a.request_done();
        a.http_ended();
        a.read_some();
        assert_eq!(a.deadline(&T).map(|d| d.1), Some(Phase::Idle));
    }
}
