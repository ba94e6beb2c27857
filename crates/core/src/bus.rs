//! The [`Bus`] seam: how a publish on one node reaches the subscribers on the
//! others. [`Relay`](crate::Relay) joins a bus to this node's [`Hub`](crate::Hub);
//! services talk to the relay, never to the bus.
//!
//! A topic is `namespace:rest` (for example `pubsub:/chat/room1`). [`Topics`]
//! says, per namespace, which order its messages need and which topics keep
//! history; a bus is built with it and every node of a cluster uses the same.
//!
//! Contract for implementations:
//! - **Delivery.** [`Bus::publish`] never waits or blocks. A message reaches every
//!   *other* node with local interest in the topic exactly once, or is counted
//!   as dropped (a full outbound queue, a bus that is down); it never comes back
//!   to its origin through the bus, except on the [`Route::Bus`] path below.
//!   Inbound messages go to the [`Inbound`] sink given to [`Bus::start`], honouring
//!   `except`.
//! - **Order.** FIFO topics: messages from one node on one topic arrive at every
//!   other node in publish order; the relay delivers its own node's copy at once
//!   ([`Route::Local`]). Ordered topics ([`Topics::ordered`]): every node delivers
//!   a topic's messages in one cluster-wide order. A bus may take the
//!   [`Route::Local`] fast path for an ordered topic only while it knows no other
//!   node has interest and the topic keeps no history; otherwise it returns
//!   [`Route::Bus`] and delivers to this node too, through the sink, in the
//!   cluster-wide order.
//! - **Interest and readiness.** [`Bus::interest`] hears, in order and under the
//!   hub's shard lock (so it must not block), when this node gains or loses its
//!   local subscribers of a topic. Once the future of [`Bus::ready`] resolves
//!   `Ok`, every message published afterwards on any node reaches this node (while
//!   its interest lasts): a subscriber whose handshake awaited it is subscribed
//!   cluster-wide.
//! - **History.** Topics with a [`Retention`] keep their recent messages; they are
//!   always sequenced (offsets increase along the topic's order) and delivered
//!   as [`Frame::Logged`] frames, and [`Bus::history`] reads them back.
//! - **Departure.** [`Bus::close`] drops interest, flushes what is queued, tells
//!   the other nodes this one is leaving, and stops calling the sink.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::hub::Fanout;
use crate::{ConnId, Disconnect, Frame, NodeId};

/// The future every asynchronous bus method returns (boxed so `Bus` stays object-safe).
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a bus message asks the receiving nodes to do with the topic's local subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Queue this frame for each of them.
    Frame(Frame),
    /// End each of their connections with this disconnect (a kick, a channel-wide end).
    Close(Disconnect),
}

/// A message as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The node that published it.
    pub origin: NodeId,
    /// The topic, for example `pubsub:/chat/room1`.
    pub topic: Arc<str>,
    /// What to do with the topic's subscribers.
    pub delivery: Delivery,
    /// A connection that must not receive it (the sender, when it gets no echo).
    pub except: Option<ConnId>,
}

/// Who delivers a published message to this node's own subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The relay, at once (the bus forwards to the other nodes).
    Local,
    /// The bus, through the inbound sink, in the topic's cluster-wide order.
    Bus,
}

/// Why the bus could not carry a message or confirm a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus's outbound queue is full; the message did not leave this node (counted).
    #[error("bus outbound queue full")]
    Backpressure,
    /// The bus is not connected to its server.
    #[error("bus disconnected")]
    Disconnected,
    /// The bus did not confirm in time.
    #[error("bus did not answer within {0:?}")]
    Timeout(Duration),
    /// The message is larger than the bus carries.
    #[error("message of {0} bytes is larger than the bus carries")]
    TooLarge(usize),
    /// The bus has been closed.
    #[error("bus closed")]
    Closed,
}

/// The bus's side of a node: where inbound messages go. The relay implements it.
pub trait Inbound: Send + Sync + 'static {
    /// Delivers `msg` to this node's subscribers of `msg.topic`. Never blocks.
    fn deliver(&self, msg: &BusMessage) -> Fanout;
}

/// How long a topic's history is kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Topics starting with this (for example `pubsub:/feed/`) keep history.
    pub prefix: String,
    /// Most messages kept per topic.
    pub max_messages: usize,
    /// Oldest message kept.
    pub max_age: Duration,
    /// Renders the envelope of a logged message (the owning service's wire format).
    pub render: crate::frame::RenderEnvelope,
}

/// Per-topic policies every node of a cluster shares.
#[derive(Debug, Clone, Default)]
pub struct Topics {
    ordered: Vec<String>,
    retention: Vec<Retention>,
}

impl Topics {
    /// No ordered namespaces and no history: every topic is FIFO per publisher.
    pub fn new() -> Self {
        Topics::default()
    }

    /// Topics in `namespace` get one cluster-wide order.
    pub fn ordered(mut self, namespace: &str) -> Self {
        self.ordered.push(format!("{namespace}:"));
        self
    }

    /// Topics matching `retention.prefix` keep history (and are ordered).
    pub fn keep(mut self, retention: Retention) -> Self {
        self.retention.push(retention);
        self
    }

    /// Whether `topic` needs one cluster-wide order.
    pub fn is_ordered(&self, topic: &str) -> bool {
        self.ordered.iter().any(|p| topic.starts_with(p.as_str()))
            || self.retention(topic).is_some()
    }

    /// The history kept for `topic`: the longest matching prefix wins.
    pub fn retention(&self, topic: &str) -> Option<&Retention> {
        self.retention
            .iter()
            .filter(|r| topic.starts_with(r.prefix.as_str()))
            .max_by_key(|r| r.prefix.len())
    }

    /// Every retention class.
    pub fn retentions(&self) -> &[Retention] {
        &self.retention
    }
}

/// Which part of a topic's history a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// Up to this many of the newest messages.
    Last(usize),
    /// Everything after `offset` in the log `epoch`.
    After {
        /// The log the offset belongs to.
        epoch: String,
        /// The last offset the subscriber has.
        offset: u64,
    },
}

/// Messages read back from a topic's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The log's identity now.
    pub epoch: Arc<str>,
    /// The messages, as [`Frame::Logged`], oldest first.
    pub frames: Vec<Frame>,
    /// The newest offset in the topic's log (0 when it has none).
    pub top: u64,
}

/// Why history could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The topic keeps no history.
    #[error("this channel keeps no history")]
    NotKept,
    /// The subscriber's epoch is not the log's (the log was reset or lost).
    #[error("the channel's history was reset (epoch changed)")]
    EpochChanged {
        /// The current epoch.
        epoch: Arc<str>,
        /// The newest offset now.
        top: u64,
    },
    /// The subscriber's offset is older than what is kept.
    #[error("the missed messages are no longer kept")]
    Expired {
        /// The current epoch.
        epoch: Arc<str>,
        /// The newest offset now.
        top: u64,
    },
    /// The store behind the history could not answer.
    #[error("history unavailable: {0}")]
    Unavailable(String),
}

/// Whether the bus can carry messages now, for readiness probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusHealth {
    /// Connected to the server (always true for an in-process bus).
    pub connected: bool,
    /// A short description (the server URL, or why it is not connected).
    pub detail: String,
}

/// Carries messages between nodes. See the module docs for the contract.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// This node's id on the bus.
    fn node(&self) -> NodeId;

    /// Starts delivering inbound messages to `inbound`. Called once, by the relay.
    fn start(&self, inbound: Arc<dyn Inbound>);

    /// Sends `msg` on its way without waiting; says who delivers this node's copy.
    fn publish(&self, msg: BusMessage) -> Result<Route, BusError>;

    /// This node gained (`true`) or lost (`false`) local subscribers of `topic`.
    /// Called under the hub's shard lock: must not block.
    fn interest(&self, topic: &str, on: bool);

    /// Resolves once publishes on every node reach this node's subscribers of `topic`.
    fn ready(&self, topic: &str) -> BusFuture<'static, Result<(), BusError>>;

    /// Delivers `msg` on the other nodes and says how many subscribers got it
    /// there (0 when no node has interest). Used when a sender must learn that
    /// nobody received a message.
    fn deliver_acked(&self, msg: BusMessage) -> BusFuture<'_, Result<usize, BusError>>;

    /// Reads back a topic's history.
    fn history(
        &self,
        topic: &str,
        query: HistoryQuery,
    ) -> BusFuture<'_, Result<History, HistoryError>>;

    /// Whether the bus is connected.
    fn health(&self) -> BusHealth;

    /// Leaves the bus (see the module docs). Idempotent.
    fn close(&self) -> BusFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(_: u64, _: &str, t: &[u8]) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(t)
    }

    #[test]
    fn topics_classify_by_namespace_and_longest_prefix() {
        let keep = |prefix: &str, n| Retention {
            prefix: prefix.into(),
            max_messages: n,
            max_age: Duration::from_secs(60),
            render,
        };
        let t = Topics::new()
            .ordered("pubsub")
            .keep(keep("pubsub:/feed/", 10))
            .keep(keep("pubsub:/feed/big/", 100))
            .keep(keep("pairing:", 1));
        assert!(t.is_ordered("pubsub:/x"));
        assert!(!t.is_ordered("rtc:user:a"));
        assert!(t.is_ordered("pairing:abc"), "history implies order");
        assert_eq!(
            t.retention("pubsub:/feed/a").map(|r| r.max_messages),
            Some(10)
        );
        assert_eq!(
            t.retention("pubsub:/feed/big/a").map(|r| r.max_messages),
            Some(100)
        );
        assert!(t.retention("pubsub:/chat").is_none());
    }
}
