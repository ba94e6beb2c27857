//! The shared core of Switchboard.
//!
//! Everything here is protocol-agnostic: no network, HTTP, SQL, NATS or JSON.
//! Services map their wire formats onto these pieces:
//!
//! - [`Frame`]: one encoded outbound WebSocket message, shared by every recipient.
//! - [`Outbox`]: the bounded per-connection queue the hub fills and a socket writer drains.
//! - [`Disconnect`]: why a connection ends, as a close code, a reason and a metric label.
//! - [`Hub`]: topic -> local subscribers, sharded, fan-out without awaiting anyone.
//! - [`Registry`]: live connections and exclusive claims (for example a user name).
//! - [`Bus`]: how a publish reaches the other nodes; [`Relay`] joins it to the hub.
//! - [`store`]: the persistence seam services use for what must outlive the process.

pub mod bus;
pub mod disconnect;
pub mod frame;
pub mod hub;
pub mod id;
pub mod outbox;
pub mod registry;
pub mod store;

pub use bus::{Bus, BusMessage, Relay};
pub use disconnect::Disconnect;
pub use frame::Frame;
pub use hub::{Hub, Subscription};
pub use id::{ConnId, NodeId};
pub use outbox::{Outbox, OutboxLimits, OutboxReceiver, OutboxSender, PushError};
pub use registry::{Claim, ClaimError, Registry};
