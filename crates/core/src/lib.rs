//! The shared core of Switchboard.
//!
//! Everything here is protocol-agnostic: no network, HTTP, SQL, NATS or JSON.
//! Services map their wire formats onto these pieces:
//!
//! - [`Frame`]: one encoded outbound WebSocket message, shared by every recipient.
//! - [`Outbox`]: the bounded per-connection queue the hub fills and a socket writer drains.
//! - [`Disconnect`]: why a connection ends, as a close code, a reason and a metric label.
//! - [`Hub`]: topic -> local subscribers, sharded, fan-out without awaiting anyone.
//! - [`Registry`]: this node's live connections.
//! - [`Bus`]: how a publish reaches the other nodes; [`Relay`] joins it to the hub.
//! - [`Records`]: small shared values changed by compare-and-set; [`Membership`]:
//!   which nodes are alive; [`Presence`]: cluster-wide claims built on both.
//! - [`store`]: the persistence seam services use for what must outlive the process.
//! - [`secret`]: comparing secrets (tokens, signatures) in constant time.

pub mod bus;
pub mod disconnect;
pub mod frame;
pub mod hub;
pub mod id;
pub mod membership;
pub mod outbox;
pub mod presence;
pub mod records;
pub mod registry;
pub mod relay;
pub mod secret;
pub mod store;

pub use bus::{Bus, BusError, BusMessage, Delivery, Route, Topics};
pub use disconnect::Disconnect;
pub use frame::Frame;
pub use hub::{Fanout, Hub, Subscription};
pub use id::{ConnId, NodeId};
pub use membership::Membership;
pub use outbox::{
    Outbox, OutboxLimits, OutboxReceiver, OutboxSender, OutboxView, PushError, Slowness,
};
pub use presence::{ClaimError, ClaimGuard, Holder, Presence};
pub use records::Records;
pub use registry::Registry;
pub use relay::{Published, Relay};
