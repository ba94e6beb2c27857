//! `fanout`: one publisher, N subscribers of one channel.
//!
//! Subscribers connect first (a completed handshake means subscribed). Then
//! the publisher sends M stamped messages ([`crate::payload`]), either over
//! its own WebSocket on the channel (draining its echoes, which are checked
//! like a subscriber's) or as POSTs over K keep-alive connections (each its
//! own ordered stream). Every subscriber checks that each sequence number of
//! each stream arrived exactly once and in order ([`OrderChecker`]) and
//! records publish→deliver latency. The run ends when every subscriber is
//! complete or gone, or when nothing arrived for `--drain-timeout` after
//! publishing.

use crate::net::{Dialer, Target};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{SinkExt as _, Stream, StreamExt as _};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_websockets::Message;

use super::{Ctx, End, ScenarioError, close_politely};
use crate::cli::{FanoutArgs, PublishMode, secs};
use crate::http::PostConn;
use crate::net::{WsConn, connect_many};
use crate::payload::{self, Stamp, now_ns};
use crate::progress::Progress;
use crate::report::{Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, OrderChecker, SeqSummary, Tally};

/// Progress counters are updated after this many frames (or [`FLUSH_NS`]).
const FLUSH_FRAMES: u64 = 256;
const FLUSH_NS: u64 = 50_000_000;

/// The result of a `fanout` run.
#[derive(Debug, Serialize)]
pub struct FanoutSummary {
    /// Subscribers asked for.
    pub subscribers: u64,
    /// Distinct URLs (nodes) the subscribers were spread over.
    pub subscriber_targets: usize,
    /// CPU time the `--cpu-pid` processes used from the first connect to the end.
    pub cpu: Vec<ProcessCpu>,
    /// Subscribers that connected.
    pub subscribers_connected: u64,
    /// Failed subscriber connects by kind.
    pub connect_errors: Tally,
    /// Subscriber connect-to-101 time.
    pub handshake: LatencySummary,
    /// Messages asked for.
    pub messages: u64,
    /// Bytes per message.
    pub size: u64,
    /// Target publish rate (0: flat out).
    pub rate: f64,
    /// Messages per burst when paced.
    pub burst: u64,
    /// `ws` or `post`.
    pub publish: &'static str,
    /// Publisher connections (1 for `ws`).
    pub publishers: u64,
    /// Messages the publisher sent (WS) or got a 200 for (POST).
    pub published: u64,
    /// Publishing errors by kind.
    pub publish_errors: Tally,
    /// Seconds from the first send to the last.
    pub publish_secs: f64,
    /// `published / publish_secs`.
    pub published_per_sec: f64,
    /// Frames received by all subscribers.
    pub deliveries: u64,
    /// `subscribers_connected × messages`.
    pub expected_deliveries: u64,
    /// Seconds from the first send to the last receive.
    pub delivery_secs: f64,
    /// `deliveries / delivery_secs`.
    pub deliveries_per_sec: f64,
    /// Sequence check over all subscribers.
    pub order: SeqSummary,
    /// Subscribers that did not get every message.
    pub incomplete_subscribers: u64,
    /// Sequence check of the publisher's own echoes (`ws` only).
    pub echo: Option<SeqSummary>,
    /// Frames that did not carry a bench payload.
    pub malformed: u64,
    /// Connections the server ended, by close code or kind.
    pub disconnects: Tally,
    /// Whether the run stopped on the drain timeout.
    pub drain_timed_out: bool,
    /// Publish→deliver latency over all deliveries.
    pub latency: LatencySummary,
}

/// CPU time one watched process used during the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessCpu {
    /// Its process id.
    pub pid: u32,
    /// User plus system CPU seconds.
    pub cpu_secs: f64,
}

impl Summary for FanoutSummary {
    fn scenario(&self) -> &'static str {
        "fanout"
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let failed = self.subscribers - self.subscribers_connected;
        if failed > 0 {
            failures.push(format!("{failed} subscribers failed to connect"));
        }
        if self.published < self.messages {
            failures.push(format!(
                "{} messages not published",
                self.messages - self.published
            ));
        }
        order_failures(&mut failures, "", &self.order);
        if let Some(echo) = &self.echo {
            order_failures(&mut failures, "publisher echo: ", echo);
        }
        if self.malformed > 0 {
            failures.push(format!("{} malformed frames", self.malformed));
        }
        failures
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "subscribers",
            format!(
                "{}/{} connected over {} node(s), handshake {}",
                self.subscribers_connected,
                self.subscribers,
                self.subscriber_targets,
                fmt_latency(&self.handshake)
            ),
        );
        for p in &self.cpu {
            out.kv(
                &format!("cpu of pid {}", p.pid),
                format!("{:.2} s", p.cpu_secs),
            );
        }
        if !self.connect_errors.is_empty() {
            out.kv("connect errors", fmt_tally(&self.connect_errors));
        }
        let rate = match (self.rate > 0.0, self.burst) {
            (false, _) => "flat out".to_owned(),
            (true, 1) => fmt_rate(self.rate),
            (true, burst) => format!("{} in bursts of {burst}", fmt_rate(self.rate)),
        };
        out.kv(
            "published",
            format!(
                "{}/{} × {} B via {} ({} conn, {rate}) in {:.3} s = {}",
                self.published,
                self.messages,
                self.size,
                self.publish,
                self.publishers,
                self.publish_secs,
                fmt_rate(self.published_per_sec)
            ),
        );
        if !self.publish_errors.is_empty() {
            out.kv("publish errors", fmt_tally(&self.publish_errors));
        }
        out.kv(
            "delivered",
            format!(
                "{}/{} frames in {:.3} s = {} deliveries",
                fmt_count(self.deliveries as f64),
                fmt_count(self.expected_deliveries as f64),
                self.delivery_secs,
                fmt_rate(self.deliveries_per_sec)
            ),
        );
        out.kv(
            "order",
            format!(
                "lost {}, duplicates {}, reorders {}, out of range {}, malformed {} ({} incomplete subscribers)",
                self.order.lost,
                self.order.duplicates,
                self.order.reorders,
                self.order.out_of_range,
                self.malformed,
                self.incomplete_subscribers
            ),
        );
        if let Some(echo) = &self.echo {
            out.kv(
                "publisher echo",
                format!(
                    "{}/{} received, {} reorders",
                    echo.received, echo.expected, echo.reorders
                ),
            );
        }
        out.kv("disconnects", fmt_tally(&self.disconnects));
        if self.drain_timed_out {
            out.kv("drain", "timed out waiting for the remaining deliveries");
        }
        out.kv("latency", fmt_latency(&self.latency));
    }
}

fn order_failures(failures: &mut Vec<String>, prefix: &str, order: &SeqSummary) {
    let counts = [
        (order.lost, "lost"),
        (order.duplicates, "duplicated"),
        (order.reorders, "reordered"),
        (order.out_of_range, "out of range"),
    ];
    for (n, what) in counts {
        if n > 0 {
            failures.push(format!("{prefix}{n} deliveries {what}"));
        }
    }
}

/// What one receiving connection measured.
#[derive(Debug)]
struct Receiver {
    checker: OrderChecker,
    latency: Latency,
    frames: u64,
    malformed: u64,
    last_recv_ns: u64,
    unreported: u64,
    reported_at_ns: u64,
}

impl Receiver {
    fn new(messages: u64, streams: u16) -> Self {
        Self {
            checker: OrderChecker::new(messages, streams),
            latency: Latency::compact(),
            frames: 0,
            malformed: 0,
            last_recv_ns: 0,
            unreported: 0,
            reported_at_ns: 0,
        }
    }

    fn report(&mut self, progress: &Progress) {
        Progress::add(&progress.received, self.unreported);
        self.unreported = 0;
        self.reported_at_ns = self.last_recv_ns;
    }
}

/// A receiver's final state and how its connection ended.
#[derive(Debug)]
struct Outcome {
    receiver: Receiver,
    end: End,
}

/// Reads stamped frames until every message arrived or the stream ends.
/// The hot loop: decode 24 bytes in place, one checker step, one histogram
/// increment; no allocation.
async fn receive<S>(stream: &mut S, rx: &mut Receiver, progress: &Progress) -> End
where
    S: Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    if rx.checker.is_complete() {
        return End::Done;
    }
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(message) => message,
            Err(e) => return End::from_error(&e),
        };
        if !message.is_text() && !message.is_binary() {
            if let Some(end) = End::from_message(&message) {
                return end;
            }
            continue;
        }
        let now = now_ns();
        rx.frames += 1;
        rx.unreported += 1;
        rx.last_recv_ns = now;
        match payload::decode(message.as_payload()) {
            Ok(stamp) => {
                rx.checker.observe(stamp.stream, stamp.seq);
                rx.latency.record_ns(now.saturating_sub(stamp.sent_ns));
            }
            Err(_) => rx.malformed += 1,
        }
        if rx.unreported >= FLUSH_FRAMES || now - rx.reported_at_ns > FLUSH_NS {
            rx.report(progress);
        }
        if rx.checker.is_complete() {
            return End::Done;
        }
    }
    End::Eof
}

/// Runs one receiving connection until done, disconnected or cancelled.
async fn subscriber(
    mut ws: WsConn,
    mut rx: Receiver,
    cancel: CancellationToken,
    progress: Arc<Progress>,
) -> Outcome {
    let end = tokio::select! {
        end = receive(&mut ws, &mut rx, &progress) => end,
        () = cancel.cancelled() => End::Stopped,
    };
    rx.report(&progress);
    if end.is_disconnect() {
        Progress::add(&progress.disconnected, 1);
    } else {
        close_politely(&mut ws, Duration::from_secs(2)).await;
    }
    Outcome { receiver: rx, end }
}

/// What the publishing side did.
#[derive(Debug, Default)]
struct Published {
    sent: u64,
    errors: Tally,
    first_ns: u64,
    last_ns: u64,
}

/// Runs the `fanout` scenario.
pub async fn run(ctx: &Ctx, args: &FanoutArgs) -> Result<FanoutSummary, ScenarioError> {
    let size =
        usize::try_from(args.size).map_err(|_| ScenarioError::Args("--size too large".into()))?;
    if size < payload::HEADER_LEN {
        return Err(ScenarioError::Args(format!(
            "--size must be at least {}",
            payload::HEADER_LEN
        )));
    }
    let publishers = match args.publish {
        PublishMode::Ws => 1,
        PublishMode::Post => args.post_connections,
    };
    let streams =
        u16::try_from(publishers).map_err(|_| ScenarioError::Args("too many publishers".into()))?;
    let progress = ctx.progress.clone();
    let cancel = CancellationToken::new();

    // Subscribers, round-robin over the subscriber URLs (the nodes of a cluster).
    progress.set_phase("connect");
    let handles: Arc<Mutex<Vec<JoinHandle<Outcome>>>> = Arc::new(Mutex::new(Vec::new()));
    let uri = ctx.target.uri().clone();
    let mut targets: Vec<(Arc<Dialer>, http::Uri)> = Vec::new();
    for url in &args.subscriber_urls {
        let t = Target::resolve(url).await?;
        let d = Dialer::new(&t, ctx.common.sources, ctx.common.connect_timeout())
            .with_recv_buffer(ctx.common.recv_buffer);
        targets.push((Arc::new(d), t.uri().clone()));
    }
    if targets.is_empty() {
        targets.push((ctx.dialer.clone(), uri.clone()));
    }
    let cpu_before = cpu_of(&args.cpu_pids).await;
    let connects = connect_many(
        args.subscribers,
        ctx.common.connect_concurrency(),
        |i| {
            let (dialer, uri) = targets[(i as usize) % targets.len()].clone();
            let handles = handles.clone();
            let cancel = cancel.clone();
            let progress = progress.clone();
            let messages = args.messages;
            async move {
                let (ws, handshake) = dialer.websocket(&uri).await?;
                let rx = Receiver::new(messages, streams);
                let task = tokio::spawn(subscriber(ws, rx, cancel, progress));
                if let Ok(mut handles) = handles.lock() {
                    handles.push(task);
                }
                Ok(handshake)
            }
        },
        |ok| {
            Progress::add(
                if ok {
                    &progress.connected
                } else {
                    &progress.connect_failed
                },
                1,
            )
        },
    )
    .await;
    let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(PoisonError::into_inner));

    // Publisher.
    progress.set_phase("publish");
    let (published, publisher) = match args.publish {
        PublishMode::Ws => {
            let (ws, _) = ctx.dialer.websocket(&uri).await?;
            let (sink, stream) = ws.split();
            let echo = tokio::spawn(echo_reader(
                stream,
                Receiver::new(args.messages, 1),
                cancel.clone(),
            ));
            let (published, sink) = publish_ws(sink, args, size, &progress).await;
            (published, Some((sink, echo)))
        }
        PublishMode::Post => (publish_post(ctx, args, size, streams).await?, None),
    };

    // Drain: wait for every subscriber (and the publisher's echoes), or give
    // up once deliveries stop.
    progress.set_phase("drain");
    let all_done = || {
        handles.iter().all(JoinHandle::is_finished)
            && publisher
                .as_ref()
                .is_none_or(|(_, echo)| echo.is_finished())
    };
    let drain_timed_out = wait_for_drain(all_done, &progress, secs(args.drain_timeout)).await;
    cancel.cancel();

    let mut latency = Latency::precise();
    let mut order = SeqSummary::default();
    let mut disconnects = Tally::default();
    let (mut deliveries, mut malformed, mut incomplete, mut last_ns) = (0, 0, 0, 0);
    for handle in handles {
        let outcome = match handle.await {
            Ok(outcome) => outcome,
            Err(e) => {
                disconnects.add(format!("task: {e}"));
                continue;
            }
        };
        let rx = &outcome.receiver;
        latency.merge(&rx.latency);
        let summary = rx.checker.summary();
        order.add(&summary);
        incomplete += u64::from(summary.lost > 0);
        deliveries += rx.frames;
        malformed += rx.malformed;
        last_ns = last_ns.max(rx.last_recv_ns);
        if outcome.end.is_disconnect() {
            disconnects.add(outcome.end.label());
        }
    }
    let echo = match publisher {
        Some((sink, task)) => match task.await {
            Ok((outcome, stream)) => {
                if let Ok(mut ws) = sink.reunite(stream) {
                    close_politely(&mut ws, Duration::from_secs(2)).await;
                }
                malformed += outcome.receiver.malformed;
                if outcome.end.is_disconnect() {
                    disconnects.add(format!("publisher {}", outcome.end.label()));
                }
                Some(outcome.receiver.checker.summary())
            }
            Err(e) => {
                disconnects.add(format!("publisher task: {e}"));
                None
            }
        },
        None => None,
    };

    let publish_secs = published.last_ns.saturating_sub(published.first_ns) as f64 / 1e9;
    let delivery_secs = last_ns.saturating_sub(published.first_ns) as f64 / 1e9;
    let cpu_after = cpu_of(&args.cpu_pids).await;
    let cpu: Vec<ProcessCpu> = args
        .cpu_pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|(pid, (b, a))| ProcessCpu {
            pid: *pid,
            cpu_secs: (a - b).max(0.0),
        })
        .collect();
    Ok(FanoutSummary {
        subscriber_targets: targets.len(),
        cpu,
        subscribers: args.subscribers,
        subscribers_connected: connects.ok,
        connect_errors: connects.errors,
        handshake: connects.handshake.summary(),
        messages: args.messages,
        size: args.size,
        rate: args.rate,
        burst: args.burst,
        publish: match args.publish {
            PublishMode::Ws => "ws",
            PublishMode::Post => "post",
        },
        publishers,
        published: published.sent,
        publish_errors: published.errors,
        publish_secs,
        published_per_sec: per_sec(published.sent, publish_secs),
        deliveries,
        expected_deliveries: connects.ok * args.messages,
        delivery_secs,
        deliveries_per_sec: per_sec(deliveries, delivery_secs),
        order,
        incomplete_subscribers: incomplete,
        echo,
        malformed,
        disconnects,
        drain_timed_out,
        latency: latency.summary(),
    })
}

/// CPU seconds used so far by each of `pids` (0 for one that cannot be read).
async fn cpu_of(pids: &[u32]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pids.len());
    for pid in pids {
        out.push(crate::procfs::cpu_secs(*pid).await.unwrap_or(0.0));
    }
    out
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Waits until `all_done()`; returns true if it gave up because no delivery
/// was counted for `idle` (the publisher has finished by now).
async fn wait_for_drain(all_done: impl Fn() -> bool, progress: &Progress, idle: Duration) -> bool {
    let mut last = progress.snapshot().received;
    let mut last_change = Instant::now();
    loop {
        if all_done() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = progress.snapshot().received;
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= idle {
            return true;
        }
    }
}

type WsSink = futures_util::stream::SplitSink<WsConn, Message>;
type WsStream = futures_util::stream::SplitStream<WsConn>;

async fn echo_reader(
    mut stream: WsStream,
    mut rx: Receiver,
    cancel: CancellationToken,
) -> (Outcome, WsStream) {
    // The publisher's echoes are not deliveries: count them on a private
    // progress value.
    let private = Progress::default();
    let end = tokio::select! {
        end = receive(&mut stream, &mut rx, &private) => end,
        () = cancel.cancelled() => End::Stopped,
    };
    (Outcome { receiver: rx, end }, stream)
}

/// The instant message `index` is due at `rate` messages per second from
/// `start`, sent in bursts of `burst` (`None`: flat out).
fn due(start: Instant, rate: f64, burst: u64, index: u64) -> Option<Instant> {
    let first_of_burst = index - index % burst.max(1);
    (rate > 0.0).then(|| start + Duration::from_secs_f64(first_of_burst as f64 / rate))
}

fn stamped(size: usize, stream: u16, seq: u64) -> Result<BytesMut, payload::PayloadError> {
    let mut buf = BytesMut::zeroed(size);
    let stamp = Stamp {
        stream,
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        sent_ns: now_ns(),
    };
    payload::encode_into(&mut buf, stamp)?;
    Ok(buf)
}

/// Publishes over the WebSocket; returns the sink so the connection stays
/// open until its echoes are in.
async fn publish_ws(
    mut sink: WsSink,
    args: &FanoutArgs,
    size: usize,
    progress: &Progress,
) -> (Published, WsSink) {
    let mut published = Published {
        first_ns: now_ns(),
        ..Published::default()
    };
    let start = Instant::now();
    let mut unreported = 0;
    let result: Result<(), String> = async {
        for seq in 0..args.messages {
            let wait = due(start, args.rate, args.burst, seq).filter(|due| *due > Instant::now());
            if let Some(due) = wait {
                sink.flush().await.map_err(|e| e.to_string())?;
                Progress::add(&progress.sent, std::mem::take(&mut unreported));
                tokio::time::sleep_until(due.into()).await;
            }
            let payload = stamped(size, 0, seq).map_err(|e| e.to_string())?;
            sink.feed(Message::text(payload.freeze()))
                .await
                .map_err(|e| e.to_string())?;
            published.sent += 1;
            unreported += 1;
            if unreported == FLUSH_FRAMES {
                Progress::add(&progress.sent, std::mem::take(&mut unreported));
            }
        }
        sink.flush().await.map_err(|e| e.to_string())
    }
    .await;
    Progress::add(&progress.sent, unreported);
    published.last_ns = now_ns();
    if let Err(e) = result {
        published.errors.add(format!("ws: {e}"));
        Progress::add(&progress.errors, 1);
    }
    (published, sink)
}

async fn publish_post(
    ctx: &Ctx,
    args: &FanoutArgs,
    size: usize,
    streams: u16,
) -> Result<Published, ScenarioError> {
    let timeout = ctx.common.connect_timeout();
    let mut conns = Vec::with_capacity(usize::from(streams));
    for _ in 0..streams {
        conns.push(PostConn::connect(&ctx.dialer, ctx.target.authority(), timeout).await?);
    }
    let start = Instant::now();
    let first_ns = now_ns();
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(0u16..)
        .map(|(mut conn, stream)| {
            let progress = ctx.progress.clone();
            let (messages, rate, burst) = (args.messages, args.rate, args.burst);
            let path = ctx.target.path().to_owned();
            tokio::spawn(async move {
                let mut sent = 0u64;
                let mut errors = Tally::default();
                let count = crate::stats::stream_split(messages, streams, stream);
                for seq in 0..count {
                    let index = seq * u64::from(streams) + u64::from(stream);
                    if let Some(due) = due(start, rate, burst, index) {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let body = match stamped(size, stream, seq) {
                        Ok(body) => body,
                        Err(e) => {
                            errors.add(format!("payload: {e}"));
                            break;
                        }
                    };
                    match conn.post(&path, &body).await {
                        Ok(()) => {
                            sent += 1;
                            Progress::add(&progress.sent, 1);
                        }
                        Err(e) => {
                            errors.add(e.label());
                            Progress::add(&progress.errors, 1);
                            break;
                        }
                    }
                }
                (sent, errors)
            })
        })
        .collect();
    let mut published = Published {
        first_ns,
        ..Published::default()
    };
    for task in tasks {
        match task.await {
            Ok((sent, errors)) => {
                published.sent += sent;
                published.errors.merge(&errors);
            }
            Err(e) => published.errors.add(format!("task: {e}")),
        }
    }
    published.last_ns = now_ns();
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_schedule() {
        let start = Instant::now();
        assert_eq!(due(start, 0.0, 1, 5), None);
        assert_eq!(due(start, 1000.0, 1, 0), Some(start));
        // Bursts of 10 at 1000/s: messages 10..=19 all go at 10 ms.
        assert_eq!(
            due(start, 1000.0, 10, 10),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(
            due(start, 1000.0, 10, 19),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(
            due(start, 1000.0, 10, 20),
            Some(start + Duration::from_millis(20))
        );
        assert_eq!(
            due(start, 1000.0, 1, 1500),
            Some(start + Duration::from_millis(1500))
        );
    }

    #[test]
    fn failures_name_each_problem() {
        let mut summary = FanoutSummary {
            subscriber_targets: 1,
            cpu: Vec::new(),
            subscribers: 3,
            subscribers_connected: 2,
            connect_errors: Tally::default(),
            handshake: LatencySummary::default(),
            messages: 10,
            size: 64,
            rate: 0.0,
            burst: 1,
            publish: "ws",
            publishers: 1,
            published: 10,
            publish_errors: Tally::default(),
            publish_secs: 1.0,
            published_per_sec: 10.0,
            deliveries: 19,
            expected_deliveries: 20,
            delivery_secs: 1.0,
            deliveries_per_sec: 19.0,
            order: SeqSummary {
                expected: 20,
                received: 19,
                lost: 1,
                reorders: 2,
                ..SeqSummary::default()
            },
            incomplete_subscribers: 1,
            echo: Some(SeqSummary {
                expected: 10,
                received: 10,
                ..SeqSummary::default()
            }),
            malformed: 0,
            disconnects: Tally::default(),
            drain_timed_out: true,
            latency: LatencySummary::default(),
        };
        assert_eq!(
            summary.failures(),
            vec![
                "1 subscribers failed to connect".to_owned(),
                "1 deliveries lost".to_owned(),
                "2 deliveries reordered".to_owned(),
            ]
        );
        summary.subscribers_connected = 3;
        summary.order = SeqSummary {
            expected: 30,
            received: 30,
            ..SeqSummary::default()
        };
        assert!(summary.failures().is_empty());
        let text = crate::report::render(&summary, false).unwrap();
        assert!(text.starts_with("fanout: PASS\n"), "{text}");
        assert!(
            text.contains("publisher echo   10/10 received, 0 reorders"),
            "{text}"
        );
    }
}
