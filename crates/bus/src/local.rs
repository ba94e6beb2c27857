//! [`LocalBus`]: nodes in one process, forwarding synchronously to each other's hubs.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use switchboard_core::bus::{Bus, BusError, BusMessage};
use switchboard_core::{Hub, NodeId};

/// A set of in-process nodes that see each other's publishes.
#[derive(Debug, Default)]
pub struct LocalCluster {
    nodes: Mutex<Vec<Weak<LocalBus>>>,
}

/// One node on an in-process bus.
#[derive(Debug)]
pub struct LocalBus {
    node: NodeId,
    hub: OnceLock<Hub>,
    cluster: Option<Arc<LocalCluster>>,
}

impl LocalBus {
    /// A node alone on its bus: publishing forwards nowhere.
    pub fn single() -> Arc<Self> {
        Arc::new(LocalBus {
            node: NodeId(rand::random()),
            hub: OnceLock::new(),
            cluster: None,
        })
    }

    /// A new, empty cluster to add nodes to with [`LocalBus::join`].
    pub fn cluster() -> Arc<LocalCluster> {
        Arc::new(LocalCluster::default())
    }

    /// A new node on `cluster`, with a distinct node id.
    pub fn join(cluster: &Arc<LocalCluster>) -> Arc<Self> {
        let mut nodes = cluster.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let node = Arc::new(LocalBus {
            node: NodeId(nodes.len() as u32 + 1),
            hub: OnceLock::new(),
            cluster: Some(cluster.clone()),
        });
        nodes.push(Arc::downgrade(&node));
        node
    }
}

impl Bus for LocalBus {
    fn node(&self) -> NodeId {
        self.node
    }

    fn attach(&self, hub: Hub) {
        let _ = self.hub.set(hub);
    }

    fn publish(&self, msg: BusMessage) -> Result<(), BusError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let peers: Vec<Arc<LocalBus>> = cluster
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|n| n.node != msg.origin)
            .collect();
        for peer in peers {
            if let Some(hub) = peer.hub.get() {
                hub.publish(&msg.topic, &msg.frame, msg.except);
            }
        }
        Ok(())
    }

    fn interest(&self, _topic: &str, _on: bool) {}
}
