//! [`NatsBus`]: the [`Bus`] over NATS.
//!
//! - **Outbound.** [`Bus::publish`] encodes once and `try_send`s into a bounded
//!   queue (policy: drop the new message, counted as
//!   `switchboard_bus_dropped_total{reason="outbound_full"}`); one task hands
//!   the queue to async-nats, which writes it in batches. Nothing on the
//!   fan-out path awaits.
//! - **Interest.** A node subscribes to a topic's subject only while it has
//!   local subscribers: the hub's interest hook records the topic and queues a
//!   command; one manager task applies commands in order, in batches, and
//!   makes one round trip to the server per batch (a request nobody answers:
//!   the server's "no responders" comes after it processed the SUBs sent
//!   before it — a mere flush only proves the bytes left). A topic is ready
//!   after that round trip (one server: a SUB it processed is in effect for
//!   every later publish from any connection; with a NATS cluster,
//!   interest propagates between servers asynchronously and a publish racing
//!   it on another server can miss — see docs/scaling.md).
//! - **Inbound.** One task per subscribed topic decodes the envelope, checks
//!   it (size, format, a live origin) and hands it to the sink, answering
//!   acknowledged deliveries with the local count.
//! - **Order.** FIFO topics are published to `P.t.…` directly. Ordered topics
//!   go through a JetStream stream (`P.s.…`) that republishes them to `P.t.…`
//!   from one server-side publisher, so every node sees one order; a node
//!   delivers its own copy from that republish too ([`Route::Bus`]). The fast
//!   path: while a node knows it is the only one interested in an ordered topic
//!   without history, it delivers locally and publishes nothing. It learns that
//!   by a handshake on `P.w.…` (see [`TopicState`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use metrics::{counter, gauge};
use switchboard_core::bus::{
    Bus, BusError, BusFuture, BusHealth, BusMessage, Delivery, History, HistoryError, HistoryQuery,
    Inbound, Route, Topics,
};
use switchboard_core::{Frame, Membership, NodeId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::conn::NatsConn;
use super::membership::NatsMembership;
use super::{envelope, history, log_once};

/// Who-subject messages: a node announcing its interest, or withdrawing it.
const PLUS: u8 = b'+';
const MINUS: u8 = b'-';

fn who_message(kind: u8, node: NodeId) -> Bytes {
    let mut b = Vec::with_capacity(5);
    b.push(kind);
    b.extend_from_slice(&node.0.to_be_bytes());
    Bytes::from(b)
}

fn decode_who(b: &[u8]) -> Option<(u8, NodeId)> {
    let kind = *b.first()?;
    let node = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
    Some((kind, NodeId(node)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Readiness {
    Pending,
    Ready,
    Failed(BusError),
}

/// This node's interest in one topic, from its first local subscriber to its last.
///
/// For an ordered topic without history (`handshake`), it also tracks which
/// other nodes are interested. The rules that make the fast path safe:
/// 1. a node subscribes to the who-subject before it announces itself there
///    (a request: `+node`), and becomes ready only when it has an answer — a
///    reply from some interested node, or "no responders";
/// 2. it takes the fast path only after "no responders" with nobody else known,
///    and leaves it (before replying) as soon as anyone announces itself;
/// 3. it answers announcements only once it is ready itself.
///
/// At most one node can be on the fast path for a topic, and a newcomer cannot
/// become ready before that node has left it: so no publish after a
/// subscriber's 101 is kept local while that subscriber is elsewhere.
#[derive(Debug)]
struct TopicState {
    topic: Arc<str>,
    handshake: bool,
    ready: watch::Sender<Readiness>,
    fast: AtomicBool,
    remote: Mutex<HashSet<NodeId>>,
    deferred: Mutex<Vec<async_nats::Subject>>,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map or set operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TopicState {
    fn is_ready(&self) -> bool {
        *self.ready.borrow() == Readiness::Ready
    }
}

enum Command {
    Subscribe(Arc<TopicState>),
    Unsubscribe(Arc<TopicState>),
}

struct Outgoing {
    subject: String,
    payload: Bytes,
}

struct Inner {
    node: NodeId,
    conn: Arc<NatsConn>,
    members: Arc<NatsMembership>,
    topics: Topics,
    sink: OnceLock<Arc<dyn Inbound>>,
    out: mpsc::Sender<Outgoing>,
    interest: Mutex<HashMap<Arc<str>, Arc<TopicState>>>,
    commands: mpsc::UnboundedSender<Command>,
    closed: AtomicBool,
    epochs: Mutex<HashMap<String, Arc<str>>>,
    /// The connection generation whose sequencing streams are declared.
    streams: watch::Sender<u64>,
}

/// The bus over NATS. See the module docs.
pub struct NatsBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("node", &self.inner.node)
            .field("topics", &lock(&self.inner.interest).len())
            .finish()
    }
}

impl NatsBus {
    /// A bus for this node (`members.node()`) on `conn`, with `topics` policies
    /// shared by the cluster. Needs a running tokio runtime.
    pub fn new(conn: Arc<NatsConn>, members: Arc<NatsMembership>, topics: Topics) -> Arc<Self> {
        let (out, out_rx) = mpsc::channel(conn.options().outbound_queue.max(1));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            node: members.node(),
            conn,
            members,
            topics,
            sink: OnceLock::new(),
            out,
            interest: Mutex::new(HashMap::new()),
            commands,
            closed: AtomicBool::new(false),
            epochs: Mutex::new(HashMap::new()),
            streams: watch::channel(0).0,
        });
        tokio::spawn(publisher(Arc::downgrade(&inner), out_rx));
        tokio::spawn(manager(Arc::downgrade(&inner), commands_rx));
        tokio::spawn(on_reconnect(Arc::downgrade(&inner)));
        tokio::spawn(on_departure(Arc::downgrade(&inner)));
        Arc::new(NatsBus { inner })
    }

    /// The connection.
    pub fn conn(&self) -> &Arc<NatsConn> {
        &self.inner.conn
    }
}

impl Inner {
    fn enqueue(&self, subject: String, payload: Bytes) -> Result<(), BusError> {
        // While disconnected, drop and count rather than let async-nats buffer: a
        // buffered publish can reach the server before the other nodes have
        // resubscribed after the outage, and vanish there uncounted.
        let client = match self.conn.client() {
            Some(c) if self.conn.is_connected() => c,
            _ => {
                counter!("switchboard_bus_dropped_total", "reason" => "disconnected").increment(1);
                return Err(BusError::Disconnected);
            }
        };
        let max = client.server_info().max_payload;
        if max > 0 && payload.len() > max {
            counter!("switchboard_bus_dropped_total", "reason" => "too_large").increment(1);
            log_once(
                "too_large_out",
                &format!(
                    "a message of {} bytes is larger than the NATS server's max_payload ({max}); dropped",
                    payload.len()
                ),
            );
            return Err(BusError::TooLarge(payload.len()));
        }
        match self.out.try_send(Outgoing { subject, payload }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                counter!("switchboard_bus_dropped_total", "reason" => "outbound_full").increment(1);
                Err(BusError::Backpressure)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(BusError::Closed),
        }
    }

    fn class(&self, topic: &str) -> String {
        self.topics
            .retention(topic)
            .map_or_else(|| history::ORDERED.to_owned(), history::class_of)
    }

    /// Announces, re-asks or withdraws this node's interest on the who-subject;
    /// the handshake of [`TopicState`].
    fn handshake(self: &Arc<Self>, st: Arc<TopicState>) {
        let inner = self.clone();
        tokio::spawn(async move {
            let Some(client) = inner.conn.client() else {
                st.fast.store(false, Ordering::Release);
                st.ready
                    .send_replace(Readiness::Failed(BusError::Disconnected));
                return;
            };
            let subject = inner.conn.subjects().who(&st.topic);
            let timeout = inner.conn.options().request_timeout;
            let asked = tokio::time::timeout(
                timeout,
                client.request(subject, who_message(PLUS, inner.node)),
            )
            .await;
            match asked {
                Ok(Ok(reply)) => {
                    if let Some((PLUS, n)) = decode_who(&reply.payload) {
                        lock(&st.remote).insert(n);
                    }
                    st.fast.store(false, Ordering::Release);
                }
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    let alone = lock(&st.remote).is_empty();
                    st.fast.store(alone, Ordering::Release);
                }
                // No answer in time: assume company (the ordered path is always safe).
                _ => st.fast.store(false, Ordering::Release),
            }
            st.ready.send_replace(Readiness::Ready);
            let deferred = std::mem::take(&mut *lock(&st.deferred));
            for reply in deferred {
                let _ = client.publish(reply, who_message(PLUS, inner.node)).await;
            }
        });
    }

    async fn epoch(&self, r: &switchboard_core::bus::Retention) -> Option<Arc<str>> {
        let class = history::class_of(r);
        if let Some(e) = lock(&self.epochs).get(&class) {
            return Some(e.clone());
        }
        let e = history::epoch(&self.conn, r).await.ok()?;
        lock(&self.epochs).insert(class, e.clone());
        Some(e)
    }

    /// Handles one message from a topic subject; returns the local count.
    async fn inbound(&self, topic: &Arc<str>, msg: &async_nats::Message) -> usize {
        let limit = self
            .conn
            .client()
            .map_or(1 << 20, |c| c.server_info().max_payload.max(1 << 16));
        if msg.payload.len() > limit {
            counter!("switchboard_bus_dropped_total", "reason" => "oversized").increment(1);
            log_once(
                "oversized_in",
                "an oversized message on a topic subject; dropped",
            );
            return 0;
        }
        let d = match envelope::decode(&msg.payload) {
            Ok(d) => d,
            Err(e) => {
                counter!("switchboard_bus_dropped_total", "reason" => "malformed").increment(1);
                log_once(
                    "malformed",
                    &format!(
                        "a malformed message on {} ({e}); dropped — is another program publishing under this prefix?",
                        msg.subject
                    ),
                );
                return 0;
            }
        };
        // The origin must be a node heard from (a heartbeat racing its first
        // message gets half a second), not merely one this node cannot rule out.
        if !self
            .members
            .wait_alive(d.origin, Duration::from_millis(500))
            .await
        {
            counter!("switchboard_bus_dropped_total", "reason" => "unknown_node").increment(1);
            log_once(
                "unknown_node",
                &format!(
                    "a message from unknown or departed node {} on {}; dropped",
                    d.origin, msg.subject
                ),
            );
            return 0;
        }
        let mut delivery = d.delivery;
        if let (Some(r), Delivery::Frame(Frame::Text(text))) =
            (self.topics.retention(topic), &delivery)
        {
            let seq = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_SEQUENCE))
                .and_then(|v| v.as_str().parse::<u64>().ok());
            if let (Some(seq), Some(epoch)) = (seq, self.epoch(r).await) {
                delivery = Delivery::Frame(Frame::logged(seq, epoch, text.clone(), r.render));
            }
        }
        let Some(sink) = self.sink.get() else {
            return 0;
        };
        counter!("switchboard_bus_received_total").increment(1);
        sink.deliver(&BusMessage {
            origin: d.origin,
            topic: topic.clone(),
            delivery,
            except: d.except,
        })
        .delivered
    }
}

impl Bus for NatsBus {
    fn node(&self) -> NodeId {
        self.inner.node
    }

    fn start(&self, inbound: Arc<dyn Inbound>) {
        let _ = self.inner.sink.set(inbound);
    }

    fn publish(&self, msg: BusMessage) -> Result<Route, BusError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        let topic = &msg.topic;
        if !inner.topics.is_ordered(topic) {
            let subject = inner.conn.subjects().data(topic);
            inner.enqueue(subject, envelope::encode(&msg))?;
            return Ok(Route::Local);
        }
        if inner.topics.retention(topic).is_none()
            && lock(&inner.interest)
                .get(topic)
                .is_some_and(|st| st.fast.load(Ordering::Acquire))
        {
            counter!("switchboard_bus_fast_path_total").increment(1);
            return Ok(Route::Local);
        }
        if *inner.streams.borrow() != inner.conn.generation_now() {
            // The sequencing streams are not (re)declared on this connection yet: a
            // publish into a stream NATS lost in a restart would vanish.
            counter!("switchboard_bus_dropped_total", "reason" => "not_ready").increment(1);
            return Err(BusError::Disconnected);
        }
        let subject = inner.conn.subjects().sequenced(&inner.class(topic), topic);
        inner.enqueue(subject, envelope::encode(&msg))?;
        Ok(Route::Bus)
    }

    fn interest(&self, topic: &str, on: bool) {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let mut interest = lock(&inner.interest);
        if on {
            let handshake =
                inner.topics.is_ordered(topic) && inner.topics.retention(topic).is_none();
            let st = Arc::new(TopicState {
                topic: Arc::from(topic),
                handshake,
                ready: watch::channel(Readiness::Pending).0,
                fast: AtomicBool::new(false),
                remote: Mutex::new(HashSet::new()),
                deferred: Mutex::new(Vec::new()),
                cancel: CancellationToken::new(),
            });
            if let Some(old) = interest.insert(st.topic.clone(), st.clone()) {
                old.cancel.cancel();
            }
            let _ = inner.commands.send(Command::Subscribe(st));
        } else if let Some(st) = interest.remove(topic) {
            st.cancel.cancel();
            let _ = inner.commands.send(Command::Unsubscribe(st));
        }
        gauge!("switchboard_bus_topics").set(interest.len() as f64);
    }

    fn ready(&self, topic: &str) -> BusFuture<'static, Result<(), BusError>> {
        let st = lock(&self.inner.interest).get(topic).cloned();
        let wait = self.inner.conn.options().request_timeout * 2;
        let ordered = self.inner.topics.is_ordered(topic);
        let mut streams = self.inner.streams.subscribe();
        let conn = self.inner.conn.clone();
        Box::pin(async move {
            if ordered
                && tokio::time::timeout(
                    wait,
                    streams.wait_for(|g| *g > 0 && *g == conn.generation_now()),
                )
                .await
                .is_err()
            {
                return Err(BusError::Timeout(wait));
            }
            let Some(st) = st else { return Ok(()) };
            let mut rx = st.ready.subscribe();
            let r = tokio::time::timeout(wait, rx.wait_for(|r| *r != Readiness::Pending)).await;
            match r {
                Ok(Ok(r)) => match &*r {
                    Readiness::Failed(e) => Err(e.clone()),
                    _ => Ok(()),
                },
                Ok(Err(_)) => Err(BusError::Closed),
                Err(_) => Err(BusError::Timeout(wait)),
            }
        })
    }

    fn deliver_acked(&self, msg: BusMessage) -> BusFuture<'_, Result<usize, BusError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let Some(client) = inner.conn.client() else {
                return Err(BusError::Disconnected);
            };
            let timeout = inner.conn.options().request_timeout;
            let subject = inner.conn.subjects().data(&msg.topic);
            match tokio::time::timeout(timeout, client.request(subject, envelope::encode(&msg)))
                .await
            {
                Ok(Ok(reply)) => Ok(reply
                    .payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, |b| u32::from_be_bytes(b) as usize)),
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(0),
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                    Err(BusError::Timeout(timeout))
                }
                Ok(Err(_)) => Err(BusError::Disconnected),
                Err(_) => Err(BusError::Timeout(timeout)),
            }
        })
    }

    fn history(
        &self,
        topic: &str,
        query: HistoryQuery,
    ) -> BusFuture<'_, Result<History, HistoryError>> {
        let topic = topic.to_owned();
        Box::pin(async move {
            let Some(r) = self.inner.topics.retention(&topic) else {
                return Err(HistoryError::NotKept);
            };
            history::read(&self.inner.conn, &topic, r, &query).await
        })
    }

    fn health(&self) -> BusHealth {
        let mut h = self.inner.conn.health();
        if h.connected && *self.inner.streams.borrow() != self.inner.conn.generation_now() {
            h.connected = false;
            h.detail = "connected to NATS; declaring the sequencing streams".into();
        }
        h
    }

    fn close(&self) -> BusFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            if inner.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            let states: Vec<Arc<TopicState>> =
                lock(&inner.interest).drain().map(|(_, st)| st).collect();
            let client = inner.conn.client();
            for st in &states {
                st.cancel.cancel();
                if st.handshake
                    && let Some(c) = &client
                {
                    let subject = inner.conn.subjects().who(&st.topic);
                    let _ = c.publish(subject, who_message(MINUS, inner.node)).await;
                }
            }
            // Let the publisher hand over what is queued, then flush it out.
            let drained = async {
                while inner.out.capacity() < inner.out.max_capacity() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
            inner.members.leave().await;
        })
    }
}

/// Hands the outbound queue to async-nats, in batches.
async fn publisher(inner: Weak<Inner>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(256);
    loop {
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let Some(client) = inner.upgrade().and_then(|i| i.conn.client()) else {
            counter!("switchboard_bus_dropped_total", "reason" => "disconnected")
                .increment(batch.len() as u64);
            batch.clear();
            continue;
        };
        let n = batch.len() as u64;
        for o in batch.drain(..) {
            if let Err(e) = client.publish(o.subject, o.payload).await {
                counter!("switchboard_bus_dropped_total", "reason" => "publish_error").increment(1);
                log_once("publish_error", &format!("NATS publish failed: {e}"));
            }
        }
        counter!("switchboard_bus_published_total").increment(n);
    }
}

/// Applies interest commands in order, in batches, one flush per batch.
async fn manager(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let conn = match inner.upgrade() {
        Some(i) => i.conn.clone(),
        None => return,
    };
    let Some(client) = conn.wait_client().await else {
        return;
    };
    drop(conn);
    let mut batch = Vec::new();
    loop {
        if rx.recv_many(&mut batch, 1024).await == 0 {
            return;
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut fresh = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Command::Subscribe(st) => {
                    if st.cancel.is_cancelled() {
                        continue;
                    }
                    match subscribe(&inner, &client, &st).await {
                        Ok(()) => fresh.push(st),
                        Err(e) => {
                            st.ready.send_replace(Readiness::Failed(e));
                        }
                    }
                }
                Command::Unsubscribe(st) => {
                    // The who-task withdraws the interest (see `withdraw`).
                    st.cancel.cancel();
                }
            }
        }
        if fresh.is_empty() {
            continue;
        }
        let timeout = inner.conn.options().request_timeout;
        match inner.conn.round_trip(&client).await {
            Ok(()) => {
                for st in fresh {
                    if st.handshake {
                        inner.handshake(st);
                    } else {
                        st.ready.send_replace(Readiness::Ready);
                    }
                }
            }
            _ => {
                for st in fresh {
                    st.ready
                        .send_replace(Readiness::Failed(BusError::Timeout(timeout)));
                }
            }
        }
    }
}

/// Subscribes `st`'s topic (and its who-subject) and starts their tasks.
async fn subscribe(
    inner: &Arc<Inner>,
    client: &Client,
    st: &Arc<TopicState>,
) -> Result<(), BusError> {
    let subjects = inner.conn.subjects();
    let data = client
        .subscribe(subjects.data(&st.topic))
        .await
        .map_err(|_| BusError::Disconnected)?;
    tokio::spawn(topic_task(Arc::downgrade(inner), st.clone(), data));
    if st.handshake {
        let who = client
            .subscribe(subjects.who(&st.topic))
            .await
            .map_err(|_| BusError::Disconnected)?;
        tokio::spawn(who_task(Arc::downgrade(inner), st.clone(), who));
    }
    Ok(())
}

/// Delivers one topic's inbound messages until the interest ends.
async fn topic_task(inner: Weak<Inner>, st: Arc<TopicState>, mut sub: Subscriber) {
    loop {
        let msg = tokio::select! {
            () = st.cancel.cancelled() => return,
            m = sub.next() => match m { Some(m) => m, None => return },
        };
        let Some(inner) = inner.upgrade() else { return };
        let delivered = inner.inbound(&st.topic, &msg).await;
        if let (Some(reply), Some(client)) = (msg.reply, inner.conn.client()) {
            let count = u32::try_from(delivered).unwrap_or(u32::MAX);
            let _ = client
                .publish(reply, Bytes::copy_from_slice(&count.to_be_bytes()))
                .await;
        }
    }
}

/// Hears other nodes announce or withdraw interest in an ordered topic.
async fn who_task(inner: Weak<Inner>, st: Arc<TopicState>, mut sub: Subscriber) {
    loop {
        let msg = tokio::select! {
            biased;
            () = st.cancel.cancelled() => return withdraw(&inner, &st, sub).await,
            m = sub.next() => match m { Some(m) => m, None => return },
        };
        let Some(inner) = inner.upgrade() else { return };
        match decode_who(&msg.payload) {
            Some((PLUS, node)) if node != inner.node => {
                lock(&st.remote).insert(node);
                st.fast.store(false, Ordering::Release);
                if let Some(reply) = msg.reply {
                    if st.is_ready() {
                        if let Some(c) = inner.conn.client() {
                            let _ = c.publish(reply, who_message(PLUS, inner.node)).await;
                        }
                    } else {
                        lock(&st.deferred).push(reply);
                    }
                }
            }
            Some((MINUS, node)) => {
                let empty = {
                    let mut r = lock(&st.remote);
                    r.remove(&node) && r.is_empty()
                };
                if empty && st.is_ready() {
                    inner.handshake(st.clone());
                }
            }
            _ => {
                counter!("switchboard_bus_dropped_total", "reason" => "malformed").increment(1);
                log_once(
                    "malformed_who",
                    "a malformed interest announcement; ignored",
                );
            }
        }
    }
}

/// Withdraws this node's interest in `st`'s topic: unsubscribes the
/// who-subject, then announces the withdrawal there. Both go out on one
/// connection in that order, so a node that re-asks on hearing the withdrawal
/// can no longer be answered by this node (which would keep it off the fast
/// path). [`NatsBus::close`] announces its own withdrawals.
async fn withdraw(inner: &Weak<Inner>, st: &TopicState, mut sub: Subscriber) {
    let _ = sub.unsubscribe().await;
    let Some(inner) = inner.upgrade() else { return };
    if inner.closed.load(Ordering::Acquire) || !st.is_ready() {
        return;
    }
    if let Some(c) = inner.conn.client() {
        let subject = inner.conn.subjects().who(&st.topic);
        let _ = c.publish(subject, who_message(MINUS, inner.node)).await;
    }
}

/// After every reconnect: declare the streams again and redo every handshake.
async fn on_reconnect(inner: Weak<Inner>) {
    let mut generation = match inner.upgrade() {
        Some(i) => i.conn.generation(),
        None => return,
    };
    loop {
        // The first turn catches a connection made before this task subscribed.
        if *generation.borrow_and_update() == 0 && generation.changed().await.is_err() {
            return;
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut wait = Duration::from_millis(200);
        loop {
            match history::declare_streams(&inner.conn, &inner.topics).await {
                Ok(()) => break,
                Err(e) => {
                    log_once(
                        "streams",
                        &format!("cannot declare the sequencing streams: {e}; retrying"),
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    if inner.closed.load(Ordering::Acquire) {
                        return;
                    }
                }
            }
        }
        lock(&inner.epochs).clear();
        let current = *generation.borrow();
        let first = inner.streams.send_replace(current) == 0;
        if first {
            // The first connection: handshakes in flight were made on it already.
            drop(inner);
            if generation.changed().await.is_err() {
                return;
            }
            continue;
        }
        let states: Vec<Arc<TopicState>> = lock(&inner.interest)
            .values()
            .filter(|st| st.handshake && st.is_ready())
            .cloned()
            .collect();
        for st in states {
            st.fast.store(false, Ordering::Release);
            lock(&st.remote).clear();
            inner.handshake(st);
        }
        drop(inner);
        if generation.changed().await.is_err() {
            return;
        }
    }
}

/// Forgets departed nodes' interest; a topic left alone re-asks whether it is.
async fn on_departure(inner: Weak<Inner>) {
    let mut departures = match inner.upgrade() {
        Some(i) => i.members.departures(),
        None => return,
    };
    loop {
        let node = match departures.recv().await {
            Ok(n) => n,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        let states: Vec<Arc<TopicState>> = lock(&inner.interest).values().cloned().collect();
        for st in states {
            let empty = {
                let mut r = lock(&st.remote);
                r.remove(&node) && r.is_empty()
            };
            if empty && st.handshake && st.is_ready() {
                inner.handshake(st);
            }
        }
    }
}
