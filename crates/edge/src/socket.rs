//! The per-socket runtime: one task per WebSocket that reads frames into a
//! service's [`Handler`] and writes the connection's [`OutboxReceiver`] to the peer.
//!
//! - **Batching** (invariant 3): everything pending in the outbox is fed to the
//!   socket and flushed once.
//! - **Keepalive**: a ping every `ping_interval`; the connection ends with
//!   [`Disconnect::Timeout`] as soon as nothing that counts (pongs only, or any
//!   frame, per [`Keepalive::any_frame_resets`]) arrived within `timeout`
//!   (checked at that moment, not at the next ping).
//! - **Slow consumers**, judged on the client, not on a busy server: a write
//!   that finishes at once never ends anything, however much was queued (a
//!   writer that was not scheduled for a while just writes a bigger batch).
//!   A client is a slow consumer when its outbox passed its memory cap
//!   (`outbox_full`), when its socket has not been writable for the outbox's
//!   `slow_after` with `slow_bytes` queued behind the stalled write
//!   (`not_reading`), or when one write stalled past `write_timeout`
//!   (`write_stalled`). Each ends with [`Disconnect::SlowConsumer`] through
//!   the service's [`Ending`] (close 1013 if the socket takes it within another
//!   `write_timeout`, as when the client reads again; or the service's abort),
//!   counted once, when the end is decided, in
//!   `switchboard_slow_consumers_total{service, cause}`.
//! - **Closing**: an end the server decides sends a Close frame with the
//!   [`Disconnect`]'s code and reason, then waits briefly for the peer's Close,
//!   unless the service's [`SocketConfig::ending`] says [`Ending::Abort`] for
//!   that disconnect: then the runtime writes what is queued and drops the
//!   connection without a Close frame (the peer sees 1006, which some clients,
//!   such as pgeu-system's meeting page, need before they reconnect).
//!   A peer's Close is answered. Each end is counted by its label.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use metrics::counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_websockets::proto::ProtocolError;
use tokio_websockets::{CloseCode, Message, Payload, WebSocketStream};

use switchboard_core::{Disconnect, Frame, OutboxReceiver, Slowness};

/// How a socket proves it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long without a qualifying frame before the connection is ended.
    pub timeout: Duration,
    /// Whether any inbound frame counts as a sign of life (otherwise only pongs do).
    pub any_frame_resets: bool,
}

/// How the runtime ends a socket for a disconnect the server decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Send a Close frame with the disconnect's code and reason (the default).
    CloseFrame,
    /// Flush what is queued, then drop the TCP connection without a Close frame.
    Abort,
}

/// The default [`SocketConfig::ending`]: a Close frame for every disconnect.
pub fn always_close_frame(_: &Disconnect) -> Ending {
    Ending::CloseFrame
}

/// Everything the runtime needs to know about one socket.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// The service name, used as a metric label and in logs.
    pub service: &'static str,
    /// Largest inbound message in bytes; larger ends with close 1009.
    pub max_message: usize,
    /// Pings and liveness.
    pub keepalive: Keepalive,
    /// Longest a single flush may take; longer ends the connection as a slow consumer.
    pub write_timeout: Duration,
    /// Cancelled when the server shuts down: the socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks so shutdown can wait for them to finish.
    pub tracker: TaskTracker,
    /// How each server-decided end is carried out (shutdown, keepalive timeout,
    /// slow consumer, a service's own disconnects). Ends the codec or the peer
    /// caused (a peer's Close, a protocol error, a too-big message) are not
    /// affected. Default: [`always_close_frame`].
    pub ending: fn(&Disconnect) -> Ending,
}

impl SocketConfig {
    /// The server-wide base: shared shutdown token and task tracker, no service
    /// yet, and neutral defaults (64 KiB messages, ping every 30 s, 60 s idle
    /// timeout, 10 s write timeout) that each service overrides with [`Self::for_service`].
    pub fn base(shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        SocketConfig {
            service: "",
            max_message: 65536,
            keepalive: Keepalive {
                ping_interval: Duration::from_secs(30),
                timeout: Duration::from_secs(60),
                any_frame_resets: true,
            },
            write_timeout: Duration::from_secs(10),
            shutdown,
            tracker,
            ending: always_close_frame,
        }
    }

    /// These settings for one service's sockets (same shutdown token and tracker).
    pub fn for_service(
        &self,
        service: &'static str,
        max_message: usize,
        keepalive: Keepalive,
        write_timeout: Duration,
    ) -> Self {
        SocketConfig {
            service,
            max_message,
            keepalive,
            write_timeout,
            ..self.clone()
        }
    }
}

/// One inbound data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message (valid UTF-8, checked by the codec).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// A service's per-connection state machine, driven by the socket runtime.
///
/// Contract: `on_message` is called once per complete inbound message, in
/// order, never concurrently; returning `Err` ends the connection with that
/// disconnect. `on_close` is called exactly once, last, whatever ended the
/// connection. Sending is done through the connection's outbox, never here.
pub trait Handler: Send + 'static {
    /// Handles one inbound message.
    fn on_message(&mut self, msg: Inbound) -> impl Future<Output = Result<(), Disconnect>> + Send;
    /// The connection ended for `reason`.
    fn on_close(self, reason: &Disconnect)
    where
        Self: Sized;
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(b) => Message::text(Payload::from(b)),
        Frame::Binary(b) => Message::binary(Payload::from(b)),
        // The outbox renders logged frames by its view; a raw one goes out as its text.
        Frame::Logged(l) => Message::text(Payload::from(l.text().clone())),
    }
}

/// Frames of batch buffer a socket keeps between writes (more is released).
const BATCH_KEEP: usize = 64;

/// Why a connection was ended as a slow consumer (the `cause` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlowCause {
    /// Its outbox passed the memory cap.
    OutboxFull,
    /// Its socket was not writable for `slow_after` with `slow_bytes` queued.
    NotReading,
    /// One write did not finish within `write_timeout`.
    WriteStalled,
}

impl SlowCause {
    fn label(self) -> &'static str {
        match self {
            SlowCause::OutboxFull => "outbox_full",
            SlowCause::NotReading => "not_reading",
            SlowCause::WriteStalled => "write_stalled",
        }
    }
}

/// Ways the connection ended, from the runtime's point of view.
enum End {
    /// We decide: send a Close frame with this disconnect.
    Server(Disconnect),
    /// The codec already queued its own Close (protocol error, too big); flush it.
    Codec(Disconnect),
    /// The peer sent Close (already answered by the codec) or vanished.
    Peer(Disconnect),
}

/// Runs the socket until it ends, then calls `handler.on_close`.
pub async fn run<S, H>(
    mut ws: WebSocketStream<S>,
    mut outbox: OutboxReceiver,
    mut handler: H,
    cfg: &SocketConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let svc = cfg.service;
    let frames_out = counter!("switchboard_ws_frames_out_total", "service" => svc);
    let msgs_in = counter!("switchboard_ws_messages_in_total", "service" => svc);
    let ka = cfg.keepalive;
    let mut ping = interval_at(Instant::now() + ka.ping_interval, ka.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_alive = Instant::now();
    let mut buf: Vec<Frame> = Vec::new();
    // Why a slow consumer was ended: the `cause` label (an outbox overflow
    // unless the writer found otherwise).
    let mut cause = SlowCause::OutboxFull;
    let limits = outbox.limits();
    // Fires when the keepalive timeout would be reached if nothing arrived since it
    // was armed; re-armed lazily from `last_alive`, so a frame costs no timer update.
    let idle = tokio::time::sleep_until(last_alive + ka.timeout);
    tokio::pin!(idle);

    // One cancellation future for the socket's life: making a new one per loop turn
    // would lock the token's shared node on every wake-up of every socket.
    let shutdown = cfg.shutdown.cancelled();
    tokio::pin!(shutdown);

    let end = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break End::Server(Disconnect::Shutdown),
            r = outbox.recv_many(&mut buf) => {
                if let Err(d) = r {
                    break End::Server(d);
                }
                let n = buf.len() as u64;
                let write = async {
                    for f in buf.drain(..) {
                        ws.feed(to_message(f)).await?;
                    }
                    ws.flush().await
                };
                // A write usually finishes at its first poll (no timer is
                // armed then); only one that waits on the client's socket
                // watches for the outbox overflowing and judges whether the
                // client reads.
                let verdict = async {
                    // Until the socket has been unwritable for `slow_after`
                    // only an overflow ends the client; then a backlog does.
                    tokio::select! {
                        biased;
                        s = outbox.slow(false) => return s,
                        () = tokio::time::sleep(limits.slow_after) => {}
                    }
                    outbox.slow(true).await
                };
                let written = tokio::select! {
                    biased;
                    r = timeout(cfg.write_timeout, write) => match r {
                        Ok(r) => Ok(r),
                        Err(_) => Err(SlowCause::WriteStalled),
                    },
                    s = verdict => Err(match s {
                        Slowness::Overflowed => SlowCause::OutboxFull,
                        Slowness::Behind => SlowCause::NotReading,
                    }),
                };
                match written {
                    Ok(Ok(())) => frames_out.increment(n),
                    Ok(Err(_)) => break End::Peer(Disconnect::PeerClosed),
                    Err(c) => {
                        cause = c;
                        break End::Server(Disconnect::SlowConsumer);
                    }
                }
                buf.clear();
                // A burst leaves no big batch buffer behind on a quiet socket.
                buf.shrink_to(BATCH_KEEP);
            }
            m = ws.next() => match m {
                None => break End::Peer(Disconnect::PeerClosed),
                Some(Ok(msg)) => {
                    if ka.any_frame_resets || msg.is_pong() {
                        last_alive = Instant::now();
                    }
                    if msg.is_close() {
                        break End::Peer(Disconnect::PeerClosed);
                    }
                    let inbound = if msg.is_text() {
                        Inbound::Text(msg.into_payload().into())
                    } else if msg.is_binary() {
                        Inbound::Binary(msg.into_payload().into())
                    } else {
                        if msg.is_ping() {
                            // The codec queued the pong; send it now rather than with the next write.
                            if timeout(cfg.write_timeout, ws.flush()).await.is_err() {
                                cause = SlowCause::WriteStalled;
                                break End::Server(Disconnect::SlowConsumer);
                            }
                        }
                        continue;
                    };
                    msgs_in.increment(1);
                    if let Err(d) = handler.on_message(inbound).await {
                        break End::Server(d);
                    }
                }
                Some(Err(e)) => break match e {
                    tokio_websockets::Error::PayloadTooLong { .. } => End::Codec(Disconnect::TooBig),
                    tokio_websockets::Error::Protocol(ProtocolError::InvalidUtf8) => End::Codec(Disconnect::InvalidUtf8),
                    tokio_websockets::Error::Protocol(_) => End::Codec(Disconnect::Protocol),
                    _ => End::Peer(Disconnect::PeerClosed),
                },
            },
            () = &mut idle => {
                let due = last_alive + ka.timeout;
                if Instant::now() >= due {
                    break End::Server(Disconnect::Timeout);
                }
                idle.as_mut().reset(due);
            }
            _ = ping.tick() => {
                if last_alive.elapsed() >= ka.timeout {
                    break End::Server(Disconnect::Timeout);
                }
                match timeout(cfg.write_timeout, ws.send(Message::ping(Payload::from(Bytes::new())))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Peer(Disconnect::PeerClosed),
                    Err(_) => {
                        cause = SlowCause::WriteStalled;
                        break End::Server(Disconnect::SlowConsumer);
                    }
                }
            }
        }
    };

    // Close the outbox first: whoever holds a claim or subscription on this
    // connection sees it closed at once, before the close handshake below.
    let ended = match &end {
        End::Server(d) | End::Codec(d) | End::Peer(d) => d.clone(),
    };
    if ended == Disconnect::SlowConsumer {
        counter!("switchboard_slow_consumers_total", "service" => svc, "cause" => cause.label())
            .increment(1);
    }
    outbox.sender().close(ended);
    let reason = match end {
        End::Server(d) if (cfg.ending)(&d) == Ending::Abort => {
            // Everything queued was written before the end was noticed; dropping
            // the stream (below) closes the TCP connection without a Close frame.
            d
        }
        End::Server(d) => {
            let code = CloseCode::try_from(d.code()).unwrap_or(CloseCode::POLICY_VIOLATION);
            let mut reason = d.reason();
            while reason.len() > 123 {
                // Cut at a char boundary below the protocol's limit.
                let mut cut = 123;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason = &reason[..cut];
            }
            let close = Message::close(Some(code), reason);
            if matches!(timeout(cfg.write_timeout, ws.send(close)).await, Ok(Ok(()))) {
                drain_until_closed(&mut ws).await;
            }
            d
        }
        End::Codec(d) => {
            if d == Disconnect::TooBig {
                // The codec queues its own 1009 for one oversized frame, but not
                // for fragments that only add up to too much: then the stream is
                // still open and this Close goes out (otherwise it is refused).
                let close = Message::close(Some(CloseCode::MESSAGE_TOO_BIG), d.reason());
                let _ = timeout(cfg.write_timeout, ws.send(close)).await;
            }
            drain_until_closed(&mut ws).await;
            d
        }
        End::Peer(d) => {
            if d == Disconnect::PeerClosed {
                // Let the codec flush its answer to the peer's Close.
                drain_until_closed(&mut ws).await;
            }
            d
        }
    };
    counter!("switchboard_ws_disconnects_total", "service" => svc, "reason" => reason.label())
        .increment(1);
    tracing::debug!(
        service = svc,
        code = reason.code(),
        reason = reason.label(),
        "socket closed"
    );
    handler.on_close(&reason);
}

/// Reads (and discards) until the peer's Close arrives or the stream ends, for at most two seconds.
async fn drain_until_closed<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::{Outbox, OutboxLimits};
    use tokio_websockets::{ClientBuilder, ServerBuilder};

    struct Quiet;

    impl Handler for Quiet {
        async fn on_message(&mut self, _msg: Inbound) -> Result<(), Disconnect> {
            Ok(())
        }
        fn on_close(self, _reason: &Disconnect) {}
    }

    fn abort_services(d: &Disconnect) -> Ending {
        match d {
            Disconnect::Service { .. } | Disconnect::Shutdown => Ending::Abort,
            _ => Ending::CloseFrame,
        }
    }

    /// Runs a socket whose outbox holds one frame and is then closed with
    /// `end`; returns what the client saw after that frame: `None` for a TCP
    /// end without a Close frame, or the Close frame's code.
    async fn ending_seen_by_client(end: Disconnect) -> Option<u16> {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut cfg = SocketConfig::base(CancellationToken::new(), TaskTracker::new());
        cfg.ending = abort_services;
        let (tx, rx) = Outbox::bounded(OutboxLimits::default());
        tx.push(Frame::text("bye")).expect("push");
        tx.close(end);
        let server = tokio::spawn(async move {
            run(ServerBuilder::new().serve(server_io), rx, Quiet, &cfg).await;
        });
        let mut client = ClientBuilder::new().take_over(client_io);
        let first = client.next().await.expect("a frame").expect("ok");
        assert_eq!(first.as_text(), Some("bye"));
        let next = client.next().await;
        server.await.expect("server task");
        match next {
            None | Some(Err(_)) => None,
            Some(Ok(m)) => {
                assert!(m.is_close(), "{m:?}");
                m.as_close().map(|(code, _)| code.into())
            }
        }
    }

    #[tokio::test]
    async fn an_abort_ending_drops_the_connection_without_a_close_frame() {
        let end = Disconnect::service(4000, "kicked", "kicked");
        assert_eq!(ending_seen_by_client(end).await, None);
        assert_eq!(ending_seen_by_client(Disconnect::Shutdown).await, None);
    }

    #[tokio::test]
    async fn other_endings_still_send_their_close_frame() {
        assert_eq!(
            ending_seen_by_client(Disconnect::SlowConsumer).await,
            Some(1013)
        );
        let mut cfg = SocketConfig::base(CancellationToken::new(), TaskTracker::new());
        assert_eq!((cfg.ending)(&Disconnect::Shutdown), Ending::CloseFrame);
        cfg = cfg.for_service("x", 10, cfg.keepalive, cfg.write_timeout);
        assert_eq!((cfg.ending)(&Disconnect::Timeout), Ending::CloseFrame);
    }

    /// Tells the test how the socket ended.
    struct Reports(Option<tokio::sync::oneshot::Sender<Disconnect>>);

    impl Handler for Reports {
        async fn on_message(&mut self, _msg: Inbound) -> Result<(), Disconnect> {
            Ok(())
        }
        fn on_close(mut self, reason: &Disconnect) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(reason.clone());
            }
        }
    }

    /// A writer that has not run yet (a busy server) finds a burst far beyond
    /// Pinghub's 256 messages queued; a client that reads gets all of it and
    /// is not ended as a slow consumer, however often its socket fills.
    #[tokio::test]
    async fn a_burst_to_a_reading_client_is_not_a_slow_consumer() {
        let (server_io, client_io) = tokio::io::duplex(16 * 1024);
        let cfg = SocketConfig::base(CancellationToken::new(), TaskTracker::new());
        let (tx, rx) = Outbox::bounded(OutboxLimits::default());
        const BURST: usize = 10_000;
        for i in 0..BURST {
            tx.push(Frame::text(format!("{i:064}")))
                .expect("within the cap");
        }
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let ws = ServerBuilder::new().serve(server_io);
            run(ws, rx, Reports(Some(done_tx)), &cfg).await;
        });
        let mut client = ClientBuilder::new().take_over(client_io);
        for i in 0..BURST {
            let m = client.next().await.expect("a frame").expect("ok");
            assert_eq!(m.as_text(), Some(format!("{i:064}").as_str()));
        }
        client
            .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
            .await
            .expect("close");
        while let Some(Ok(_)) = client.next().await {}
        assert_eq!(done.await.expect("ended"), Disconnect::PeerClosed);
        server.await.expect("server task");
    }

    /// A client that does not read: once its socket is not writable for
    /// `slow_after` with `slow_bytes` queued behind the write, it is ended as
    /// a slow consumer with 1013, well before the write timeout.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_is_ended_with_1013() {
        let (server_io, client_io) = tokio::io::duplex(4096);
        let cfg = SocketConfig::base(CancellationToken::new(), TaskTracker::new());
        let limits = OutboxLimits {
            slow_bytes: 8 * 1024,
            slow_after: Duration::from_secs(2),
            ..OutboxLimits::default()
        };
        let (tx, rx) = Outbox::bounded(limits);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        let server = tokio::spawn(async move {
            let ws = ServerBuilder::new().serve(server_io);
            run(ws, rx, Reports(Some(done_tx)), &cfg).await;
        });
        let frame = Frame::text("y".repeat(1000));
        // Enough to fill the pipe and the codec: the writer stalls on it.
        for _ in 0..32 {
            tx.push(frame.clone()).expect("queued");
            tokio::task::yield_now().await;
        }
        // Then a backlog behind the stalled write.
        for _ in 0..16 {
            tx.push(frame.clone()).expect("queued");
        }
        // The client starts reading only after the judgement is due.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut client = ClientBuilder::new().take_over(client_io);
        let code = loop {
            match client.next().await {
                Some(Ok(m)) if m.is_close() => break m.as_close().map(|(c, _)| u16::from(c)),
                Some(Ok(_)) => {}
                other => panic!("no Close frame: {other:?}"),
            }
        };
        assert_eq!(code, Some(1013));
        assert_eq!(done.await.expect("ended"), Disconnect::SlowConsumer);
        let after = started.elapsed();
        assert!(
            after < cfg_write_timeout(),
            "{after:?}: ended by the judgement, not the write timeout"
        );
        server.await.expect("server task");
    }

    fn cfg_write_timeout() -> Duration {
        SocketConfig::base(CancellationToken::new(), TaskTracker::new()).write_timeout
    }

    /// A peer that never pongs is dropped when the timeout is reached, not at
    /// the next ping after it (90 s with pings every 60 s, not 120 s).
    #[tokio::test(start_paused = true)]
    async fn the_keepalive_timeout_is_exact() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut cfg = SocketConfig::base(CancellationToken::new(), TaskTracker::new());
        cfg.keepalive = Keepalive {
            ping_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(90),
            any_frame_resets: false,
        };
        let (_tx, rx) = Outbox::bounded(OutboxLimits::default());
        let started = Instant::now();
        let server = tokio::spawn(async move {
            run(ServerBuilder::new().serve(server_io), rx, Quiet, &cfg).await;
            Instant::now()
        });
        // Keep the client's half open but never read (so never pong).
        let _client = client_io;
        let ended = server.await.expect("server task");
        let after = ended - started;
        assert!(
            after >= Duration::from_secs(90) && after < Duration::from_secs(100),
            "{after:?}"
        );
    }
}
