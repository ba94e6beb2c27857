//! Identifiers for nodes and connections.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Identifies one Switchboard process among the nodes sharing a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Identifies one connection, unique across every node on a bus: the node id in
/// the high 32 bits and a per-node counter in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The node that owns this connection.
    pub fn node(self) -> NodeId {
        NodeId((self.0 >> 32) as u32)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Hands out [`ConnId`]s for one node.
#[derive(Debug)]
pub struct ConnIds {
    node: NodeId,
    next: AtomicU32,
}

impl ConnIds {
    /// A generator for `node`, starting at 1.
    pub fn new(node: NodeId) -> Self {
        ConnIds {
            node,
            next: AtomicU32::new(1),
        }
    }

    /// The next id. Wraps after 2^32 connections, by which time the first ones are long gone.
    pub fn next(&self) -> ConnId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        ConnId((u64::from(self.node.0) << 32) | u64::from(n))
    }

    /// The node these ids belong to.
    pub fn node(&self) -> NodeId {
        self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_node_and_are_distinct() {
        let ids = ConnIds::new(NodeId(7));
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.node(), NodeId(7));
        assert_eq!(b.node(), NodeId(7));
    }
}
