//! The [`Bus`] seam: how a publish on one node reaches the subscribers on the
//! others, and [`Relay`], which joins a bus to this node's [`Hub`].
//!
//! Services never talk to the hub or the bus directly for delivery; they call
//! [`Relay::publish`] and [`Relay::subscribe`]. With the in-process bus that is
//! the hub alone; with a network bus the same calls reach every node.
//!
//! Contract for implementations:
//! - [`Bus::publish`] never waits and never blocks; it forwards the message to
//!   the *other* nodes only (the relay has already delivered locally). Messages
//!   from one node on one topic arrive at every other node in publish order.
//! - Inbound messages from other nodes are handed to the hub given in
//!   [`Bus::attach`] with [`Hub::publish`], honouring `except`.
//! - A message is never delivered twice to the same node, and never back to its origin.
//! - [`Bus::interest`] is a hint: the node has gained (`true`) or lost (`false`)
//!   its local subscribers of a topic; a bus may use it to limit what it receives.

use std::sync::Arc;

use crate::hub::{Fanout, InterestHook};
use crate::id::ConnIds;
use crate::{ConnId, Frame, Hub, NodeId, OutboxSender, Subscription};

/// A message as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The node that published it.
    pub origin: NodeId,
    /// The topic, for example `pubsub:/chat/room1`.
    pub topic: String,
    /// The encoded frame, delivered as is.
    pub frame: Frame,
    /// A connection that must not receive it (the sender, when it gets no echo).
    pub except: Option<ConnId>,
}

/// Why the bus refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus's outbound queue is full; the message did not leave this node.
    #[error("bus outbound queue full")]
    Backpressure,
    /// The bus is disconnected.
    #[error("bus disconnected")]
    Disconnected,
}

/// Carries messages between nodes. See the module docs for the contract.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// This node's id on the bus.
    fn node(&self) -> NodeId;
    /// Hands the bus the hub that inbound messages are delivered to. Called once.
    fn attach(&self, hub: Hub);
    /// Forwards `msg` to the other nodes, without waiting.
    fn publish(&self, msg: BusMessage) -> Result<(), BusError>;
    /// This node gained (`true`) or lost (`false`) local subscribers of `topic`.
    fn interest(&self, topic: &str, on: bool);
}

/// This node's delivery front door: the local hub plus the bus to the others.
#[derive(Debug, Clone)]
pub struct Relay {
    hub: Hub,
    bus: Arc<dyn Bus>,
    ids: Arc<ConnIds>,
}

impl Relay {
    /// Builds a relay over `bus` with a hub of `shards` shards, and attaches them.
    pub fn new(bus: Arc<dyn Bus>, shards: usize) -> Self {
        let b = bus.clone();
        let hook: InterestHook = Arc::new(move |topic: &str, on: bool| b.interest(topic, on));
        let hub = Hub::new(shards, Some(hook));
        bus.attach(hub.clone());
        Relay {
            hub,
            ids: Arc::new(ConnIds::new(bus.node())),
            bus,
        }
    }

    /// A fresh connection id, unique across the bus.
    pub fn next_conn_id(&self) -> ConnId {
        self.ids.next()
    }

    /// This node's hub (for counts and local queries).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.bus.node()
    }

    /// Subscribes a local connection to `topic` until the guard drops.
    pub fn subscribe(&self, topic: &str, conn: ConnId, outbox: OutboxSender) -> Subscription {
        self.hub.subscribe(topic, conn, outbox)
    }

    /// Delivers `frame` to every subscriber of `topic` on every node, except
    /// `except`. Returns the local fan-out and whether the bus took the message.
    pub fn publish(
        &self,
        topic: &str,
        frame: Frame,
        except: Option<ConnId>,
    ) -> (Fanout, Result<(), BusError>) {
        let local = self.hub.publish(topic, &frame, except);
        let remote = self.bus.publish(BusMessage {
            origin: self.bus.node(),
            topic: topic.to_owned(),
            frame,
            except,
        });
        (local, remote)
    }
}
