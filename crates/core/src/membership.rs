//! The [`Membership`] seam: which nodes of a cluster are alive.
//!
//! State a node holds for its clients (a user's online claim, a member of a
//! pairing channel) names the node. When that node dies without saying goodbye,
//! the others must stop honouring it within a bounded time: the
//! [`Membership::liveness_timeout`]. A node that leaves cleanly says so and is
//! dead to the others at once.
//!
//! Nodes also answer for cluster-wide counts: each sets a [`Reporter`] (a
//! small snapshot of its own numbers) and [`Membership::gather`] collects the
//! reports of every live node, so a console can show channels and users of the
//! whole cluster rather than one node's share.
//!
//! Contract: `is_alive` answers from this node's current view without waiting;
//! this node is always alive to itself; a node that was declared dead is
//! announced once on [`Membership::departures`] (a restarted process is a new
//! node with a new id). `gather` waits at most a short bounded time and
//! returns what arrived, this node's report always included.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::NodeId;
use crate::bus::BusFuture;

/// Produces this node's report for [`Membership::gather`].
pub type Reporter = Arc<dyn Fn() -> Bytes + Send + Sync>;

/// A live node as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Its configured name (host name and pid by default).
    pub name: String,
}

/// Who is alive. See the module docs for the contract.
pub trait Membership: Send + Sync + Debug + 'static {
    /// This node.
    fn node(&self) -> NodeId;

    /// Whether `node` is alive in this node's view.
    fn is_alive(&self, node: NodeId) -> bool;

    /// The nodes alive now, this one included.
    fn live(&self) -> Vec<NodeInfo>;

    /// Announces each node declared dead, once.
    fn departures(&self) -> broadcast::Receiver<NodeId>;

    /// How long after its last sign of life a silent node is declared dead.
    fn liveness_timeout(&self) -> Duration;

    /// Sets what this node reports to [`Membership::gather`].
    fn set_reporter(&self, reporter: Reporter);

    /// Every live node's report (see the module docs).
    fn gather(&self) -> BusFuture<'_, Vec<(NodeId, Bytes)>>;
}

/// A settable reporter, for implementations.
#[derive(Default)]
pub struct ReporterSlot(Mutex<Option<Reporter>>);

impl Debug for ReporterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReporterSlot")
    }
}

impl ReporterSlot {
    /// Replaces the reporter.
    pub fn set(&self, r: Reporter) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    }

    /// This node's report now (empty without a reporter).
    pub fn report(&self) -> Bytes {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        r.map(|f| f()).unwrap_or_default()
    }
}

/// The membership of a node alone: only itself is alive.
#[derive(Debug)]
pub struct Solo {
    node: NodeId,
    name: String,
    departures: broadcast::Sender<NodeId>,
    reporter: ReporterSlot,
}

impl Solo {
    /// A lone node.
    pub fn new(node: NodeId, name: impl Into<String>) -> Self {
        Solo {
            node,
            name: name.into(),
            departures: broadcast::channel(1).0,
            reporter: ReporterSlot::default(),
        }
    }
}

impl Membership for Solo {
    fn node(&self) -> NodeId {
        self.node
    }

    fn is_alive(&self, node: NodeId) -> bool {
        node == self.node
    }

    fn live(&self) -> Vec<NodeInfo> {
        vec![NodeInfo {
            id: self.node,
            name: self.name.clone(),
        }]
    }

    fn departures(&self) -> broadcast::Receiver<NodeId> {
        self.departures.subscribe()
    }

    fn liveness_timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn set_reporter(&self, reporter: Reporter) {
        self.reporter.set(reporter);
    }

    fn gather(&self) -> BusFuture<'_, Vec<(NodeId, Bytes)>> {
        Box::pin(std::future::ready(vec![(
            self.node,
            self.reporter.report(),
        )]))
    }
}
