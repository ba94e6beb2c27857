//! The cluster conformance suite: the behaviour every backend of the core's
//! cluster seams must show — [`Bus`] (through the [`Relay`]), [`Records`],
//! [`Membership`] and the [`Presence`] built on them. Every check is an async
//! function over a [`Backend`] that makes nodes; the `conformance!` macro runs
//! each one twice: `local::<check>` on the in-process cluster and
//! `nats::<check>` on a `nats-server` the test starts on a dynamic port (skipped
//! loudly if `nats-server` is missing, a failure under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_bus::nats::{NatsBus, NatsConn, NatsMembership, NatsOptions, NatsRecords};
use switchboard_bus::{LocalBus, LocalCluster, LocalRecords};
use switchboard_core::bus::{HistoryError, HistoryQuery, Retention};
use switchboard_core::records::{RecordsError, Space};
use switchboard_core::{
    ClaimError, Disconnect, Frame, Membership, NodeId, Outbox, OutboxLimits, OutboxReceiver,
    OutboxView, Presence, Records, Registry, Relay, Route, Topics,
};
use switchboard_testkit::nats::NatsServer;

const WAIT: Duration = Duration::from_secs(10);

/// How long a fresh client may take to connect: longer than [`WAIT`] because a
/// loaded CI machine starting a JetStream server per test has been seen to
/// take over ten seconds (the failure message then shows each bus's health).
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// One node of a cluster under test.
struct Node {
    relay: Relay,
    records: Arc<dyn Records>,
    membership: Arc<dyn Membership>,
    presence: Presence,
    registry: Registry,
}

impl Node {
    fn node(&self) -> NodeId {
        self.relay.node()
    }

    /// A subscriber of `topic` on this node, ready cluster-wide.
    async fn subscriber(
        &self,
        topic: &str,
    ) -> (
        switchboard_core::Subscription,
        OutboxReceiver,
        switchboard_core::ConnId,
    ) {
        self.subscriber_as(topic, OutboxView::Plain).await
    }

    /// A subscriber whose outbox renders logged frames as `view`.
    async fn subscriber_as(
        &self,
        topic: &str,
        view: OutboxView,
    ) -> (
        switchboard_core::Subscription,
        OutboxReceiver,
        switchboard_core::ConnId,
    ) {
        let limits = OutboxLimits::capped(100_000, 64 << 20);
        let (tx, rx) = Outbox::with_view(limits, view);
        let conn = self.relay.next_conn_id();
        let sub = self.relay.subscribe(topic, conn, tx);
        tokio::time::timeout(WAIT, self.relay.ready(topic))
            .await
            .expect("ready in time")
            .expect("ready");
        (sub, rx, conn)
    }
}

/// Makes the nodes of one cluster.
enum Backend {
    Local {
        cluster: Arc<LocalCluster>,
        records: Arc<LocalRecords>,
    },
    Nats {
        server: Box<NatsServer>,
        prefix: String,
    },
}

const SPACES: [Space; 2] = [
    Space {
        name: "claims",
        max_age: None,
    },
    Space {
        name: "things",
        max_age: None,
    },
];

fn render(offset: u64, epoch: &str, text: &[u8]) -> Bytes {
    Bytes::from(format!(
        "{offset}@{epoch}:{}",
        String::from_utf8_lossy(text)
    ))
}

/// The policies every node of the test cluster shares.
fn topics() -> Topics {
    Topics::new().ordered("ord").keep(Retention {
        prefix: "hist:".into(),
        max_messages: 5,
        max_age: Duration::from_secs(600),
        render,
    })
}

impl Backend {
    fn local() -> Self {
        Backend::Local {
            cluster: LocalBus::cluster(),
            records: Arc::new(LocalRecords::new(&SPACES)),
        }
    }

    fn nats() -> Option<Self> {
        let server = NatsServer::start()?;
        Some(Backend::Nats {
            server: Box::new(server),
            prefix: format!("conf{:08x}", rand::random::<u32>()),
        })
    }

    fn nats_options(&self) -> NatsOptions {
        let Backend::Nats { server, prefix } = self else {
            unreachable!("NATS options of a NATS backend")
        };
        let mut o = NatsOptions::new(vec![server.url()], "conformance");
        o.prefix = prefix.clone();
        o.heartbeat = Duration::from_millis(100);
        o.node_timeout = Duration::from_millis(1000);
        o
    }

    async fn node(&self) -> Node {
        let registry = Registry::default();
        let (relay, records, membership): (Relay, Arc<dyn Records>, Arc<dyn Membership>) =
            match self {
                Backend::Local { cluster, records } => {
                    let bus = LocalBus::join(cluster, topics());
                    let m = cluster.membership(switchboard_core::Bus::node(&*bus));
                    (Relay::new(bus, 8), records.clone(), m)
                }
                Backend::Nats { .. } => {
                    let conn = NatsConn::start(self.nats_options()).await.expect("options");
                    let m = NatsMembership::start(conn.clone(), NodeId(rand::random::<u32>() | 1));
                    let bus = NatsBus::new(conn.clone(), m.clone(), topics());
                    let records = NatsRecords::new(conn, &SPACES);
                    (Relay::new(bus, 8), records, m)
                }
            };
        let reg = registry.clone();
        let presence = Presence::new(
            records.clone(),
            membership.clone(),
            Arc::new(move |c| reg.is_open(c)),
        );
        Node {
            relay,
            records,
            membership,
            presence,
            registry,
        }
    }

    async fn nodes(&self, n: usize) -> Vec<Node> {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(self.node().await);
        }
        let ids: Vec<NodeId> = nodes.iter().map(Node::node).collect();
        let view = || {
            nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} sees {:?}",
                        n.node(),
                        n.membership.live().iter().map(|l| l.id).collect::<Vec<_>>()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let health = || {
            nodes
                .iter()
                .map(|n| format!("{}: {}", n.node(), n.relay.bus().health().detail))
                .collect::<Vec<_>>()
                .join("; ")
        };
        eventually_within(
            CONNECT_WAIT,
            &health,
            "every bus is connected and ready",
            || nodes.iter().all(|n| n.relay.bus().health().connected),
        )
        .await;
        eventually_or(&view, "every node sees every other", || {
            nodes.iter().all(|n| {
                ids.iter()
                    .all(|id| n.membership.live().iter().any(|l| l.id == *id))
            })
        })
        .await;
        nodes
    }
}

/// Waits (bounded) until `cond` holds: for state with no event to await;
/// `state` describes what was seen when it times out.
async fn eventually_or(state: &dyn Fn() -> String, what: &str, cond: impl FnMut() -> bool) {
    eventually_within(WAIT, state, what, cond).await;
}

/// Like [`eventually_or`] with its own bound.
async fn eventually_within(
    wait: Duration,
    state: &dyn Fn() -> String,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what} ({})",
            state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Receives exactly `n` frames (bounded in time).
async fn take(rx: &mut OutboxReceiver, n: usize) -> Vec<Frame> {
    let mut got = Vec::new();
    while got.len() < n {
        let mut buf = Vec::new();
        match tokio::time::timeout(WAIT, rx.recv_many(&mut buf)).await {
            Ok(Ok(())) => got.extend(buf),
            Ok(Err(d)) => panic!("outbox closed ({d}) after {} of {n} frames", got.len()),
            Err(_) => panic!("only {} of {n} frames arrived", got.len()),
        }
    }
    assert_eq!(got.len(), n, "no more than expected");
    got
}

fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| String::from_utf8_lossy(f.payload()).into_owned())
        .collect()
}

// ---- checks ----------------------------------------------------------------

/// FIFO topics: a publish reaches every node's subscribers once, in publish
/// order, honouring `except`; the publishing node delivers its own copy.
async fn fifo_delivery_is_once_in_order_everywhere(b: Backend) {
    let nodes = b.nodes(2).await;
    let (a, bn) = (&nodes[0], &nodes[1]);
    let (_sa, mut ra, ca) = a.subscriber("fifo:t").await;
    let (_sb, mut rb, _) = bn.subscriber("fifo:t").await;
    for i in 0..100 {
        let p = a
            .relay
            .publish("fifo:t", Frame::text(format!("a{i}")), None);
        assert_eq!(p.bus, Ok(Route::Local));
        assert_eq!(p.local.map(|f| f.delivered), Some(1));
    }
    bn.relay
        .publish("fifo:t", Frame::text("from b, not to a's sub"), Some(ca));
    let want: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
    assert_eq!(
        texts(&take(&mut ra, 100).await),
        want,
        "origin delivers once, in order"
    );
    // FIFO is per publisher: b's own message may come before a's, which crossed the bus.
    let got_b = texts(&take(&mut rb, 101).await);
    let from_a: Vec<&String> = got_b.iter().filter(|m| m.starts_with('a')).collect();
    assert_eq!(
        from_a,
        want.iter().collect::<Vec<_>>(),
        "the other node gets all of a's, in order"
    );
    assert!(got_b.contains(&"from b, not to a's sub".to_owned()));
}

/// A subscriber whose readiness resolved gets every later publish from any node.
async fn ready_means_subscribed_cluster_wide(b: Backend) {
    let nodes = b.nodes(2).await;
    for i in 0..30 {
        let topic = format!("fifo:ready{i}");
        let (_s, mut rx, _) = nodes[1].subscriber(&topic).await;
        nodes[0].relay.publish(&topic, Frame::text("first"), None);
        assert_eq!(texts(&take(&mut rx, 1).await), ["first"], "{topic}");
        let otopic = format!("ord:ready{i}");
        let (_s, mut rx, _) = nodes[1].subscriber(&otopic).await;
        nodes[0].relay.publish(&otopic, Frame::text("first"), None);
        assert_eq!(texts(&take(&mut rx, 1).await), ["first"], "{otopic}");
    }
}

/// Ordered topics: with publishers on two nodes and subscribers on three, every
/// subscriber sees the same messages in the same order.
async fn ordered_topics_have_one_order(b: Backend) {
    let nodes = b.nodes(3).await;
    let mut subs = Vec::new();
    for n in &nodes {
        subs.push(n.subscriber("ord:room").await);
    }
    const N: usize = 300;
    let pubs: Vec<_> = [0usize, 1]
        .into_iter()
        .map(|k| {
            let relay = nodes[k].relay.clone();
            tokio::spawn(async move {
                for i in 0..N {
                    relay.publish("ord:room", Frame::text(format!("n{k}-{i}")), None);
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in pubs {
        p.await.expect("publisher");
    }
    let mut seen = Vec::new();
    for (_, rx, _) in &mut subs {
        seen.push(texts(&take(rx, 2 * N).await));
    }
    assert_eq!(seen[0], seen[1], "node 0 and node 1 agree");
    assert_eq!(seen[0], seen[2], "node 0 and node 2 agree");
    for k in 0..2 {
        let own: Vec<&String> = seen[0]
            .iter()
            .filter(|m| m.starts_with(&format!("n{k}-")))
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("n{k}-{i}")).collect();
        assert_eq!(
            own,
            want.iter().collect::<Vec<_>>(),
            "publisher {k}'s order kept"
        );
    }
}

/// An ordered topic with one interested node takes the fast path; once another
/// node is ready, publishes go through the sequencer and reach both.
async fn ordered_fast_path_only_while_alone(b: Backend) {
    let nodes = b.nodes(2).await;
    let (_sa, mut ra, _) = nodes[0].subscriber("ord:fast").await;
    // (The in-process cluster sequences as soon as it has two nodes: the fast
    // path is checked on NATS, where interest decides.)
    let p = nodes[0]
        .relay
        .publish("ord:fast", Frame::text("alone"), None);
    assert_eq!(texts(&take(&mut ra, 1).await), ["alone"]);
    let alone_route = p.bus;
    let (sb, mut rb, _) = nodes[1].subscriber("ord:fast").await;
    let p = nodes[0]
        .relay
        .publish("ord:fast", Frame::text("together"), None);
    assert_eq!(
        p.bus,
        Ok(Route::Bus),
        "sequenced once another node is interested"
    );
    assert_eq!(texts(&take(&mut ra, 1).await), ["together"]);
    assert_eq!(texts(&take(&mut rb, 1).await), ["together"]);
    if let Backend::Nats { .. } = b {
        assert_eq!(alone_route, Ok(Route::Local), "fast path while alone");
        drop(sb);
        // Node 1 withdrew; node 0 re-asks and takes the fast path again.
        let relay = nodes[0].relay.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let p = relay.publish("ord:fast", Frame::text("again"), None);
            let _ = take(&mut ra, 1).await;
            if p.bus == Ok(Route::Local) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fast path not resumed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A close published on a topic ends its subscribers on every node.
async fn close_reaches_every_node(b: Backend) {
    let nodes = b.nodes(2).await;
    let (_sa, mut ra, _) = nodes[0].subscriber("fifo:kick").await;
    let (_sb, mut rb, _) = nodes[1].subscriber("fifo:kick").await;
    let reason = Disconnect::service(4001, "kicked", "kicked");
    nodes[0]
        .relay
        .close_topic("fifo:kick", reason.clone(), None);
    for rx in [&mut ra, &mut rb] {
        let mut buf = Vec::new();
        let got = tokio::time::timeout(WAIT, rx.recv_many(&mut buf))
            .await
            .expect("closed in time");
        assert_eq!(got, Err(reason.clone()));
    }
}

/// `deliver_to_one` answers how many subscribers got it, wherever they are.
async fn acknowledged_delivery_counts(b: Backend) {
    let nodes = b.nodes(2).await;
    let (_s, mut rx, _) = nodes[1].subscriber("fifo:user:bob").await;
    let n = nodes[0]
        .relay
        .deliver_to_one("fifo:user:bob", Frame::text("hi bob"))
        .await
        .expect("delivered");
    assert_eq!(n, 1);
    assert_eq!(texts(&take(&mut rx, 1).await), ["hi bob"]);
    let n = nodes[0]
        .relay
        .deliver_to_one("fifo:user:nobody", Frame::text("lost"))
        .await
        .expect("answered");
    assert_eq!(n, 0, "nobody anywhere");
}

/// Topics with history: live frames carry offsets; history returns the last
/// N, or exactly what followed an offset, or says why it cannot.
async fn history_is_exact_or_says_why_not(b: Backend) {
    let nodes = b.nodes(2).await;
    let (_s, mut rx, _) = nodes[1]
        .subscriber_as("hist:feed", OutboxView::Envelope)
        .await;
    for i in 1..=8 {
        nodes[0]
            .relay
            .publish("hist:feed", Frame::text(format!("m{i}")), None);
    }
    // The envelope view renders `offset@epoch:text` (see `render`).
    let live: Vec<(u64, String, String)> = texts(&take(&mut rx, 8).await)
        .iter()
        .map(|e| {
            let (pos, text) = e.split_once(':').expect("an envelope");
            let (offset, epoch) = pos.split_once('@').expect("offset@epoch");
            (
                offset.parse().expect("offset"),
                epoch.to_owned(),
                text.to_owned(),
            )
        })
        .collect();
    let offsets: Vec<u64> = live.iter().map(|l| l.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets increase: {offsets:?}"
    );
    assert_eq!(live[7].2, "m8");
    let last = nodes[0]
        .relay
        .history("hist:feed", HistoryQuery::Last(3))
        .await
        .expect("history");
    assert_eq!(texts(&last.frames), ["m6", "m7", "m8"]);
    assert_eq!(last.top, offsets[7]);
    let history_offsets: Vec<u64> = last.frames.iter().filter_map(Frame::offset).collect();
    assert_eq!(
        history_offsets,
        offsets[5..],
        "history and live agree on offsets"
    );
    assert_eq!(&*last.epoch, live[0].1, "and on the epoch");
    let after = |offset| HistoryQuery::After {
        epoch: last.epoch.to_string(),
        offset,
    };
    // Kept: m4..m8 (5 per topic). After m5 is m6..m8; after m2 is gone.
    let h = nodes[1]
        .relay
        .history("hist:feed", after(offsets[4]))
        .await
        .expect("after m5");
    assert_eq!(texts(&h.frames), ["m6", "m7", "m8"]);
    let h = nodes[1]
        .relay
        .history("hist:feed", after(offsets[7]))
        .await
        .expect("after m8");
    assert!(h.frames.is_empty());
    assert!(matches!(
        nodes[1].relay.history("hist:feed", after(offsets[1])).await,
        Err(HistoryError::Expired { .. })
    ));
    let other = HistoryQuery::After {
        epoch: "not-this-one".into(),
        offset: offsets[7],
    };
    assert!(matches!(
        nodes[1].relay.history("hist:feed", other).await,
        Err(HistoryError::EpochChanged { .. })
    ));
    assert_eq!(
        nodes[0]
            .relay
            .history("fifo:x", HistoryQuery::Last(1))
            .await,
        Err(HistoryError::NotKept)
    );
}

/// Records: create once, compare-and-set updates and deletes, keys listed.
async fn records_compare_and_set(b: Backend) {
    let nodes = b.nodes(2).await;
    let (r0, r1) = (&nodes[0].records, &nodes[1].records);
    let rev = r0
        .create("things", "a/b c", Bytes::from_static(b"1"))
        .await
        .expect("create");
    assert_eq!(
        r1.create("things", "a/b c", Bytes::from_static(b"2")).await,
        Err(RecordsError::Exists)
    );
    let got = r1
        .get("things", "a/b c")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((got.value.as_ref(), got.revision), (&b"1"[..], rev));
    let rev2 = r1
        .update("things", "a/b c", Bytes::from_static(b"3"), rev)
        .await
        .expect("update");
    assert_eq!(
        r0.update("things", "a/b c", Bytes::from_static(b"4"), rev)
            .await,
        Err(RecordsError::Conflict)
    );
    assert_eq!(
        r0.delete("things", "a/b c", Some(rev)).await,
        Err(RecordsError::Conflict)
    );
    assert_eq!(r0.keys("things").await.expect("keys"), ["a/b c"]);
    r0.delete("things", "a/b c", Some(rev2))
        .await
        .expect("delete");
    assert_eq!(r1.get("things", "a/b c").await.expect("get"), None);
    assert_eq!(
        r1.delete("things", "a/b c", Some(rev2)).await,
        Err(RecordsError::Conflict),
        "a second delete of the same revision loses"
    );
    r0.delete("things", "never", None)
        .await
        .expect("deleting nothing is fine");
    assert!(matches!(
        r0.get("nope", "k").await,
        Err(RecordsError::UnknownSpace(_))
    ));
    // Of concurrent creates, exactly one wins.
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let r = nodes[i % 2].records.clone();
            tokio::spawn(
                async move { r.create("things", "race", Bytes::from(vec![i as u8])).await },
            )
        })
        .collect();
    let mut wins = 0;
    for t in tries {
        if t.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

/// Presence: one live holder cluster-wide; released with its guard; a holder
/// on a departed node is taken over; take-over names the previous holder.
async fn presence_is_exclusive_and_follows_liveness(b: Backend) {
    let nodes = b.nodes(3).await;
    let (a, bn) = (&nodes[0], &nodes[1]);
    let (atx, _arx) = Outbox::bounded(OutboxLimits::default());
    let aconn = a.relay.next_conn_id();
    let _areg = a.registry.register(aconn, "test", atx);
    let guard = a
        .presence
        .claim("claims", "alice", aconn)
        .await
        .expect("free");
    let bconn = bn.relay.next_conn_id();
    match bn.presence.claim("claims", "alice", bconn).await {
        Err(ClaimError::Taken(h)) => assert_eq!((h.node, h.conn), (a.node(), aconn)),
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(
        bn.presence
            .holder("claims", "alice")
            .await
            .expect("holder")
            .map(|h| h.node),
        Some(a.node())
    );
    drop(guard);
    let deadline = tokio::time::Instant::now() + WAIT;
    let g = loop {
        match bn.presence.claim("claims", "alice", bconn).await {
            Ok(g) => break g,
            Err(ClaimError::Taken(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("released claim not free: {e}"),
        }
    };
    // Take-over by a third node names the previous holder.
    let c = &nodes[2];
    let cconn = c.relay.next_conn_id();
    let (_g2, prev) = c
        .presence
        .take_over("claims", "alice", cconn)
        .await
        .expect("take over");
    assert_eq!(prev.map(|h| h.conn), Some(bconn));
    drop(g);
    // A node that leaves: its claims stop counting.
    let dconn = bn.relay.next_conn_id();
    let (btx, _brx) = Outbox::bounded(OutboxLimits::default());
    let _breg = bn.registry.register(dconn, "test", btx);
    let _held = bn
        .presence
        .claim("claims", "carol", dconn)
        .await
        .expect("free");
    bn.relay.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match a.presence.claim("claims", "carol", aconn).await {
            Ok(_) => break,
            Err(ClaimError::Taken(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("a departed node's claim still counts: {e}"),
        }
    }
}

/// Every live node's report reaches `gather` on any node.
async fn gather_collects_every_live_nodes_report(b: Backend) {
    let nodes = b.nodes(3).await;
    for n in &nodes {
        let me = n.node();
        n.membership
            .set_reporter(Arc::new(move || Bytes::from(format!("report of {me}"))));
    }
    for n in &nodes {
        let mut got: Vec<(NodeId, Bytes)> = n.membership.gather().await;
        got.sort_by_key(|(id, _)| *id);
        let mut want: Vec<(NodeId, Bytes)> = nodes
            .iter()
            .map(|m| (m.node(), Bytes::from(format!("report of {}", m.node()))))
            .collect();
        want.sort_by_key(|(id, _)| *id);
        assert_eq!(got, want);
    }
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Backend::local()).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(b) = super::Backend::nats() else { return };
                    super::$check(b).await;
                }
            )*
        }
    };
}

conformance!(
    fifo_delivery_is_once_in_order_everywhere,
    ready_means_subscribed_cluster_wide,
    ordered_topics_have_one_order,
    ordered_fast_path_only_while_alone,
    close_reaches_every_node,
    acknowledged_delivery_counts,
    history_is_exact_or_says_why_not,
    records_compare_and_set,
    presence_is_exclusive_and_follows_liveness,
    gather_collects_every_live_nodes_report,
);
