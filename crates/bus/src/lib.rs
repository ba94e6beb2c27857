//! Bus implementations. See [`switchboard_core::bus`] for the contract.
//!
//! - [`LocalBus`]: the default for one process. [`LocalBus::single`] is a node
//!   with no peers; [`LocalBus::cluster`] makes several in-process nodes that
//!   forward to each other, which is what the conformance suite (and any test
//!   of multi-node behaviour without NATS) runs on.

mod local;

pub use local::{LocalBus, LocalCluster};
