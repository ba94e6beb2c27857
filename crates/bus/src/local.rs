//! [`LocalBus`]: nodes in one process. [`LocalBus::single`] is the default bus of
//! a lone node; [`LocalBus::join`] adds nodes to an in-process [`LocalCluster`]
//! that forward to each other synchronously (for tests of multi-node behaviour
//! without NATS, and the conformance suite).
//!
//! How it keeps the [`Bus`] contract:
//! - FIFO topics: the relay delivers locally ([`Route::Local`]); the bus hands
//!   the message to every other node's sink before `publish` returns.
//! - Ordered topics: alone, with no history, the fast path ([`Route::Local`]).
//!   Otherwise the message is sequenced under the topic's lock in the cluster
//!   (one of 64 sharded locks), logged if the topic keeps history, and handed to
//!   every node's sink, this one's included, before the lock is released
//!   ([`Route::Bus`]): one order for everyone.
//! - History lives in [`MemoryLogs`], shared by the cluster's nodes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use switchboard_core::bus::{
    Bus, BusError, BusFuture, BusHealth, BusMessage, Delivery, History, HistoryError, HistoryQuery,
    Inbound, Route, Topics,
};
use switchboard_core::membership::{Membership, NodeInfo};
use switchboard_core::{Frame, NodeId};
use tokio::sync::broadcast;

use crate::memory_log::MemoryLogs;

/// A set of in-process nodes that see each other's publishes.
pub struct LocalCluster {
    nodes: Mutex<Vec<Weak<LocalBus>>>,
    next_node: AtomicU32,
    sequencers: Box<[Mutex<()>]>,
    logs: MemoryLogs,
    departures: broadcast::Sender<NodeId>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("nodes", &lock(&self.nodes).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalCluster {
    fn new(first_node: u32) -> Arc<Self> {
        Arc::new(LocalCluster {
            nodes: Mutex::new(Vec::new()),
            next_node: AtomicU32::new(first_node),
            sequencers: (0..64).map(|_| Mutex::new(())).collect(),
            logs: MemoryLogs::new(),
            departures: broadcast::channel(64).0,
        })
    }

    fn members(&self) -> Vec<Arc<LocalBus>> {
        lock(&self.nodes)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|n| !n.closed.load(Ordering::Acquire))
            .collect()
    }

    fn sequencer(&self, topic: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        topic.hash(&mut h);
        lock(&self.sequencers[(h.finish() % self.sequencers.len() as u64) as usize])
    }

    /// A [`Membership`] view of this cluster for `node`.
    pub fn membership(self: &Arc<Self>, node: NodeId) -> Arc<LocalMembership> {
        Arc::new(LocalMembership {
            node,
            cluster: self.clone(),
        })
    }
}

/// One node on an in-process bus.
pub struct LocalBus {
    node: NodeId,
    topics: Topics,
    sink: OnceLock<Arc<dyn Inbound>>,
    cluster: Arc<LocalCluster>,
    closed: AtomicBool,
    reporter: switchboard_core::membership::ReporterSlot,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBus")
            .field("node", &self.node)
            .finish()
    }
}

impl LocalBus {
    /// A node alone on its bus, with a random node id.
    pub fn single(topics: Topics) -> Arc<Self> {
        let cluster = LocalCluster::new(rand::random::<u32>().max(1));
        LocalBus::join(&cluster, topics)
    }

    /// A new, empty cluster to add nodes to with [`LocalBus::join`].
    pub fn cluster() -> Arc<LocalCluster> {
        LocalCluster::new(1)
    }

    /// A new node on `cluster`, with a distinct node id.
    pub fn join(cluster: &Arc<LocalCluster>, topics: Topics) -> Arc<Self> {
        let node = Arc::new(LocalBus {
            node: NodeId(cluster.next_node.fetch_add(1, Ordering::Relaxed)),
            topics,
            sink: OnceLock::new(),
            cluster: cluster.clone(),
            closed: AtomicBool::new(false),
            reporter: Default::default(),
        });
        lock(&cluster.nodes).push(Arc::downgrade(&node));
        node
    }

    /// The cluster this node belongs to.
    pub fn local_cluster(&self) -> &Arc<LocalCluster> {
        &self.cluster
    }

    fn deliver(&self, msg: &BusMessage) -> usize {
        self.sink.get().map_or(0, |s| s.deliver(msg).delivered)
    }

    fn peers(&self) -> impl Iterator<Item = Arc<LocalBus>> + use<> {
        let me = self.node;
        self.cluster
            .members()
            .into_iter()
            .filter(move |n| n.node != me)
    }
}

impl Bus for LocalBus {
    fn node(&self) -> NodeId {
        self.node
    }

    fn start(&self, inbound: Arc<dyn Inbound>) {
        let _ = self.sink.set(inbound);
    }

    fn publish(&self, msg: BusMessage) -> Result<Route, BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        let retention = self.topics.retention(&msg.topic);
        if !self.topics.is_ordered(&msg.topic) {
            for peer in self.peers() {
                peer.deliver(&msg);
            }
            return Ok(Route::Local);
        }
        let members = self.cluster.members();
        if retention.is_none() && members.len() <= 1 {
            return Ok(Route::Local);
        }
        let _turn = self.cluster.sequencer(&msg.topic);
        let msg = match (&msg.delivery, retention) {
            (Delivery::Frame(Frame::Text(text)), Some(r)) => {
                let (offset, epoch) = self.cluster.logs.append(&msg.topic, text.clone(), r);
                BusMessage {
                    delivery: Delivery::Frame(Frame::logged(offset, epoch, text.clone(), r.render)),
                    ..msg
                }
            }
            _ => msg,
        };
        for node in &members {
            node.deliver(&msg);
        }
        Ok(Route::Bus)
    }

    fn interest(&self, _topic: &str, _on: bool) {}

    fn ready(&self, _topic: &str) -> BusFuture<'static, Result<(), BusError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn deliver_acked(&self, msg: BusMessage) -> BusFuture<'_, Result<usize, BusError>> {
        let n = self.peers().map(|p| p.deliver(&msg)).sum();
        Box::pin(std::future::ready(Ok(n)))
    }

    fn history(
        &self,
        topic: &str,
        query: HistoryQuery,
    ) -> BusFuture<'_, Result<History, HistoryError>> {
        let out = match self.topics.retention(topic) {
            None => Err(HistoryError::NotKept),
            Some(r) => {
                // Under the topic's sequencer, so no message is half-logged.
                let _turn = self.cluster.sequencer(topic);
                self.cluster.logs.read(topic, &query, r)
            }
        };
        Box::pin(std::future::ready(out))
    }

    fn health(&self) -> BusHealth {
        BusHealth {
            connected: true,
            detail: "in-process bus".into(),
        }
    }

    fn close(&self) -> BusFuture<'_, ()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.cluster.departures.send(self.node);
        }
        Box::pin(std::future::ready(()))
    }
}

/// The [`Membership`] of an in-process cluster: a node is alive until its bus closes.
#[derive(Debug)]
pub struct LocalMembership {
    node: NodeId,
    cluster: Arc<LocalCluster>,
}

impl Membership for LocalMembership {
    fn node(&self) -> NodeId {
        self.node
    }

    fn is_alive(&self, node: NodeId) -> bool {
        node == self.node || self.cluster.members().iter().any(|n| n.node == node)
    }

    fn live(&self) -> Vec<NodeInfo> {
        self.cluster
            .members()
            .iter()
            .map(|n| NodeInfo {
                id: n.node,
                name: format!("local-{}", n.node),
            })
            .collect()
    }

    fn departures(&self) -> broadcast::Receiver<NodeId> {
        self.cluster.departures.subscribe()
    }

    fn liveness_timeout(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    fn set_reporter(&self, reporter: switchboard_core::membership::Reporter) {
        if let Some(me) = self
            .cluster
            .members()
            .into_iter()
            .find(|n| n.node == self.node)
        {
            me.reporter.set(reporter);
        }
    }

    fn gather(&self) -> BusFuture<'_, Vec<(NodeId, bytes::Bytes)>> {
        let out = self
            .cluster
            .members()
            .iter()
            .map(|n| (n.node, n.reporter.report()))
            .collect();
        Box::pin(std::future::ready(out))
    }
}
