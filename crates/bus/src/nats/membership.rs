//! [`NatsMembership`]: who is alive, from heartbeats on `P.node.hb`.
//!
//! Every node publishes a beat every `heartbeat`, a hello when it (re)connects
//! (each node answers a hello with a beat at once, so a newcomer learns the live
//! set in one round trip) and a goodbye when it leaves cleanly. A node not heard
//! from for `node_timeout` is declared dead and announced on the departures
//! channel; so is one that said goodbye, at once.
//!
//! Two rules keep an outage of NATS itself from killing everyone: nobody is aged
//! out while this node is disconnected, and a reconnect restarts every peer's
//! clock. A newcomer treats nodes it has not heard from yet as alive during its
//! first `node_timeout` (they may simply not have answered yet), and as dead after.
//! A node heard from again after being declared dead is alive again (a
//! partition that healed); what it held meanwhile may have been taken over.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use metrics::gauge;
use switchboard_core::NodeId;
use switchboard_core::membership::{Membership, NodeInfo};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::conn::NatsConn;

const BEAT: u8 = 1;
const HELLO: u8 = 2;
const BYE: u8 = 3;

#[derive(Debug)]
struct Peer {
    name: String,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct State {
    peers: HashMap<NodeId, Peer>,
    dead: HashSet<NodeId>,
}

/// Liveness from heartbeats. See the module docs.
#[derive(Debug)]
pub struct NatsMembership {
    node: NodeId,
    name: String,
    conn: Arc<NatsConn>,
    started: Instant,
    state: Mutex<State>,
    departures: broadcast::Sender<NodeId>,
    changed: tokio::sync::Notify,
    reporter: switchboard_core::membership::ReporterSlot,
}

fn encode(kind: u8, node: NodeId, name: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + name.len());
    b.put_u8(kind);
    b.put_u32(node.0);
    b.put_slice(name.as_bytes());
    b.freeze()
}

fn decode(b: &[u8]) -> Option<(u8, NodeId, String)> {
    let kind = *b.first()?;
    let node = NodeId(u32::from_be_bytes(b.get(1..5)?.try_into().ok()?));
    let name = String::from_utf8_lossy(b.get(5..)?).into_owned();
    Some((kind, node, name))
}

impl NatsMembership {
    /// Starts beating and listening for `node` on `conn`.
    pub fn start(conn: Arc<NatsConn>, node: NodeId) -> Arc<Self> {
        let m = Arc::new(NatsMembership {
            node,
            name: conn.options().node_name.clone(),
            conn,
            started: Instant::now(),
            state: Mutex::new(State::default()),
            departures: broadcast::channel(256).0,
            changed: tokio::sync::Notify::new(),
            reporter: Default::default(),
        });
        tokio::spawn(listen(Arc::downgrade(&m)));
        tokio::spawn(beat(Arc::downgrade(&m)));
        m
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the maps consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timeout(&self) -> Duration {
        self.conn.options().node_timeout
    }

    async fn send(&self, kind: u8) {
        if let Some(client) = self.conn.client() {
            let subject = self.conn.subjects().heartbeat();
            let _ = client
                .publish(subject, encode(kind, self.node, &self.name))
                .await;
        }
    }

    /// Whether `node` is known alive, waiting up to `within` for a beat from it.
    pub async fn wait_alive(&self, node: NodeId, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if self.heard(node) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.heard(node);
            }
        }
    }

    /// Whether `node` is this one or a peer heard from and not declared dead.
    fn heard(&self, node: NodeId) -> bool {
        let st = self.lock();
        node == self.node || (st.peers.contains_key(&node) && !st.dead.contains(&node))
    }

    fn on_message(&self, kind: u8, node: NodeId, name: String) {
        if node == self.node {
            return;
        }
        let now = Instant::now();
        let mut st = self.lock();
        match kind {
            BYE => {
                st.peers.remove(&node);
                if st.dead.insert(node) {
                    drop(st);
                    tracing::info!(node = %node, name = %name, "node left the cluster");
                    let _ = self.departures.send(node);
                }
            }
            BEAT | HELLO => {
                let back = st.dead.remove(&node);
                let new = st
                    .peers
                    .insert(
                        node,
                        Peer {
                            name: name.clone(),
                            last_seen: now,
                        },
                    )
                    .is_none();
                gauge!("switchboard_cluster_nodes").set((st.peers.len() + 1) as f64);
                drop(st);
                if new {
                    tracing::info!(node = %node, name = %name, back, "node joined the cluster");
                }
            }
            _ => {}
        }
        self.changed.notify_waiters();
    }

    /// Declares dead every peer silent for longer than the timeout.
    fn reap(&self) {
        if !self.conn.is_connected() {
            return;
        }
        let now = Instant::now();
        let timeout = self.timeout();
        let mut st = self.lock();
        let silent: Vec<NodeId> = st
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_seen) > timeout)
            .map(|(n, _)| *n)
            .collect();
        for n in &silent {
            if let Some(p) = st.peers.remove(n) {
                st.dead.insert(*n);
                tracing::warn!(node = %n, name = %p.name, silent_ms = timeout.as_millis() as u64, "node declared dead: no heartbeat");
            }
        }
        gauge!("switchboard_cluster_nodes").set((st.peers.len() + 1) as f64);
        drop(st);
        for n in silent {
            let _ = self.departures.send(n);
        }
    }

    /// After a reconnect: everyone gets a fresh clock.
    fn restart_clocks(&self) {
        let now = Instant::now();
        for p in self.lock().peers.values_mut() {
            p.last_seen = now;
        }
    }

    /// Says goodbye (a clean leave: the others release this node's state at once).
    pub async fn leave(&self) {
        self.send(BYE).await;
        if let Some(c) = self.conn.client() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.flush()).await;
        }
    }
}

impl Membership for NatsMembership {
    fn node(&self) -> NodeId {
        self.node
    }

    fn is_alive(&self, node: NodeId) -> bool {
        if node == self.node {
            return true;
        }
        let st = self.lock();
        if st.dead.contains(&node) {
            return false;
        }
        st.peers.contains_key(&node) || self.started.elapsed() < self.timeout()
    }

    fn live(&self) -> Vec<NodeInfo> {
        let st = self.lock();
        let mut out: Vec<NodeInfo> = st
            .peers
            .iter()
            .map(|(id, p)| NodeInfo {
                id: *id,
                name: p.name.clone(),
            })
            .collect();
        out.push(NodeInfo {
            id: self.node,
            name: self.name.clone(),
        });
        out.sort_by_key(|n| n.id);
        out
    }

    fn departures(&self) -> broadcast::Receiver<NodeId> {
        self.departures.subscribe()
    }

    fn liveness_timeout(&self) -> Duration {
        self.timeout()
    }

    fn set_reporter(&self, reporter: switchboard_core::membership::Reporter) {
        self.reporter.set(reporter);
    }

    fn gather(&self) -> switchboard_core::bus::BusFuture<'_, Vec<(NodeId, Bytes)>> {
        Box::pin(async move {
            let mut out = vec![(self.node, self.reporter.report())];
            let Some(client) = self.conn.client().filter(|_| self.conn.is_connected()) else {
                return out;
            };
            let peers = self.lock().peers.len();
            let inbox = client.new_inbox();
            let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
                return out;
            };
            let asked = client
                .publish_with_reply(self.conn.subjects().stats(), inbox, Bytes::new())
                .await;
            if asked.is_err() {
                return out;
            }
            let deadline = Instant::now() + GATHER_WAIT;
            while out.len() <= peers {
                match tokio::time::timeout_at(deadline, replies.next()).await {
                    Ok(Some(m)) => {
                        if let Some(node) = m.payload.get(..4).and_then(|b| b.try_into().ok()) {
                            let node = NodeId(u32::from_be_bytes(node));
                            if node != self.node && out.iter().all(|(n, _)| *n != node) {
                                out.push((node, m.payload.slice(4..)));
                            }
                        }
                    }
                    _ => break,
                }
            }
            out
        })
    }
}

/// How long [`Membership::gather`] waits for the other nodes' reports.
const GATHER_WAIT: Duration = Duration::from_millis(300);

/// Subscribes to heartbeats (again after every reconnect) and handles them.
async fn listen(m: Weak<NatsMembership>) {
    let (conn, mut generation) = match m.upgrade() {
        Some(m) => (m.conn.clone(), m.conn.generation()),
        None => return,
    };
    let Some(client) = conn.wait_client().await else {
        return;
    };
    let (Ok(mut sub), Ok(mut stats)) = (
        client.subscribe(conn.subjects().heartbeat()).await,
        client.subscribe(conn.subjects().stats()).await,
    ) else {
        tracing::error!("cannot subscribe to node heartbeats");
        return;
    };
    drop(conn);
    if let Some(m) = m.upgrade() {
        m.send(HELLO).await;
    }
    loop {
        tokio::select! {
            changed = generation.changed() => {
                if changed.is_err() { return; }
                let Some(m) = m.upgrade() else { return };
                m.restart_clocks();
                m.send(HELLO).await;
            }
            ask = stats.next() => {
                let Some(ask) = ask else { return };
                let Some(m) = m.upgrade() else { return };
                if let Some(reply) = ask.reply {
                    let mut b = BytesMut::new();
                    b.put_u32(m.node.0);
                    b.put_slice(&m.reporter.report());
                    let _ = client.publish(reply, b.freeze()).await;
                }
            }
            msg = sub.next() => {
                let Some(msg) = msg else { return };
                let Some(m) = m.upgrade() else { return };
                let Some((kind, node, name)) = decode(&msg.payload) else {
                    metrics::counter!("switchboard_bus_dropped_total", "reason" => "malformed").increment(1);
                    super::log_once("heartbeat", "malformed heartbeat on the node subject; ignored");
                    continue;
                };
                if kind == HELLO && node != m.node {
                    m.send(BEAT).await;
                }
                m.on_message(kind, node, name);
            }
        }
    }
}

/// Beats and reaps until the membership is dropped.
async fn beat(m: Weak<NatsMembership>) {
    let period = match m.upgrade() {
        Some(m) => m.conn.options().heartbeat,
        None => return,
    };
    let mut tick = tokio::time::interval(period / 2);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        let Some(m) = m.upgrade() else { return };
        n += 1;
        if n.is_multiple_of(2) {
            m.send(BEAT).await;
        }
        m.reap();
    }
}
