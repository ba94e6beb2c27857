//! The [`Membership`] seam: which nodes of a cluster are alive.
//!
//! State a node holds for its clients (a user's online claim, a member of a
//! pairing channel) names the node. When that node dies without saying goodbye,
//! the others must stop honouring it within a bounded time: the
//! [`Membership::liveness_timeout`]. A node that leaves cleanly says so and is
//! dead to the others at once.
//!
//! Contract: `is_alive` answers from this node's current view without waiting;
//! this node is always alive to itself; a node that was declared dead is
//! announced once on [`Membership::departures`] and is never alive again (a
//! restarted process is a new node with a new id).

use std::fmt::Debug;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::NodeId;

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
}

/// The membership of a node alone: only itself is alive.
#[derive(Debug)]
pub struct Solo {
    node: NodeId,
    name: String,
    departures: broadcast::Sender<NodeId>,
}

impl Solo {
    /// A lone node.
    pub fn new(node: NodeId, name: impl Into<String>) -> Self {
        Solo {
            node,
            name: name.into(),
            departures: broadcast::channel(1).0,
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
}
