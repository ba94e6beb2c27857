//! [`Relay`]: this node's delivery front door, the local [`Hub`] joined to a [`Bus`].
//!
//! Services subscribe and publish through the relay only. It owns the wiring that
//! used to make a reference cycle: the hub's interest hook holds the bus weakly,
//! and the bus holds the hub only inside the [`Inbound`] sink it is started with.
//! See [`crate::bus`] for what the bus guarantees; the relay adds:
//! - [`Relay::publish`] delivers this node's copy itself on [`Route::Local`], and
//!   also when the bus refused the message (a node that lost its bus keeps
//!   serving its own subscribers);
//! - [`Relay::subscribe`] then [`Relay::ready`]: awaiting both before the 101 makes
//!   a completed handshake mean subscribed cluster-wide (invariant 4);
//! - [`Relay::deliver_to_one`] for a topic with at most one subscriber anywhere (a
//!   user's socket): this node first, then the others, answering how many got it.

use std::sync::{Arc, Weak};

use crate::bus::{
    Bus, BusError, BusFuture, BusMessage, Delivery, History, HistoryError, HistoryQuery, Inbound,
    Route,
};
use crate::hub::{Fanout, InterestHook};
use crate::id::ConnIds;
use crate::{ConnId, Disconnect, Frame, Hub, NodeId, OutboxSender, Subscription};

/// What one publish did on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// This node's fan-out, when the relay delivered it ([`Route::Local`] or a refused bus).
    pub local: Option<Fanout>,
    /// Whether the bus took the message, and who delivers this node's copy.
    pub bus: Result<Route, BusError>,
}

/// The relay's [`Inbound`] sink: messages from other nodes go to the hub.
struct HubSink {
    hub: Hub,
}

impl Inbound for HubSink {
    fn deliver(&self, msg: &BusMessage) -> Fanout {
        match &msg.delivery {
            Delivery::Frame(f) => self.hub.publish(&msg.topic, f, msg.except),
            Delivery::Close(d) => Fanout {
                delivered: self.hub.close_topic(&msg.topic, d, msg.except),
                overflowed: 0,
            },
        }
    }
}

/// This node's delivery front door: the local hub plus the bus to the others.
#[derive(Debug, Clone)]
pub struct Relay {
    hub: Hub,
    bus: Arc<dyn Bus>,
    ids: Arc<ConnIds>,
}

impl Relay {
    /// Builds a relay over `bus` with a hub of `shards` shards, and starts the bus.
    pub fn new(bus: Arc<dyn Bus>, shards: usize) -> Self {
        let weak: Weak<dyn Bus> = Arc::downgrade(&bus);
        let hook: InterestHook = Arc::new(move |topic: &str, on: bool| {
            if let Some(bus) = weak.upgrade() {
                bus.interest(topic, on);
            }
        });
        let hub = Hub::new(shards, Some(hook));
        bus.start(Arc::new(HubSink { hub: hub.clone() }));
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

    /// The bus (for health and metrics).
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.bus.node()
    }

    /// Subscribes a local connection to `topic` until the guard drops. Await
    /// [`Relay::ready`] afterwards before telling the client it is subscribed.
    pub fn subscribe(&self, topic: &str, conn: ConnId, outbox: OutboxSender) -> Subscription {
        self.hub.subscribe(topic, conn, outbox)
    }

    /// Resolves once publishes on every node reach this node's subscribers of `topic`.
    pub fn ready(&self, topic: &str) -> BusFuture<'static, Result<(), BusError>> {
        self.bus.ready(topic)
    }

    fn message(&self, topic: &str, delivery: Delivery, except: Option<ConnId>) -> BusMessage {
        BusMessage {
            origin: self.bus.node(),
            topic: Arc::from(topic),
            delivery,
            except,
        }
    }

    /// Delivers `frame` to every subscriber of `topic` on every node, except `except`.
    pub fn publish(&self, topic: &str, frame: Frame, except: Option<ConnId>) -> Published {
        let msg = self.message(topic, Delivery::Frame(frame), except);
        let bus = self.bus.publish(msg.clone());
        let local = match bus {
            Ok(Route::Bus) => None,
            Ok(Route::Local) | Err(_) => {
                let Delivery::Frame(frame) = &msg.delivery else {
                    unreachable!("built as a frame above")
                };
                Some(self.hub.publish(topic, frame, except))
            }
        };
        Published { local, bus }
    }

    /// Ends every subscriber of `topic` on every node (except `except`) with `reason`.
    /// Returns how many were ended on this node when the relay did it itself.
    pub fn close_topic(
        &self,
        topic: &str,
        reason: Disconnect,
        except: Option<ConnId>,
    ) -> Published {
        let msg = self.message(topic, Delivery::Close(reason.clone()), except);
        let bus = self.bus.publish(msg);
        let local = match bus {
            Ok(Route::Bus) => None,
            Ok(Route::Local) | Err(_) => Some(Fanout {
                delivered: self.hub.close_topic(topic, &reason, except),
                overflowed: 0,
            }),
        };
        Published { local, bus }
    }

    /// Delivers `frame` to the subscribers of `topic`, a topic with at most one
    /// subscriber cluster-wide: on this node if it has one, else on the others.
    /// Returns how many got it (0: nobody anywhere).
    pub async fn deliver_to_one(&self, topic: &str, frame: Frame) -> Result<usize, BusError> {
        let local = self.hub.publish(topic, &frame, None);
        if local.delivered + local.overflowed > 0 {
            return Ok(local.delivered);
        }
        let msg = self.message(topic, Delivery::Frame(frame), None);
        self.bus.deliver_acked(msg).await
    }

    /// Reads back a topic's history.
    pub async fn history(&self, topic: &str, query: HistoryQuery) -> Result<History, HistoryError> {
        self.bus.history(topic, query).await
    }

    /// Leaves the bus (see [`Bus::close`]).
    pub async fn close(&self) {
        self.bus.close().await;
    }
}
