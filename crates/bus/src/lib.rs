//! Cluster backends behind the core's seams ([`switchboard_core::bus`],
//! [`switchboard_core::records`], [`switchboard_core::membership`]).
//!
//! - In process: [`LocalBus`] (a lone node, or an in-process [`LocalCluster`]
//!   for tests), [`LocalRecords`], and [`LocalMembership`] /
//!   [`switchboard_core::membership::Solo`].
//! - NATS: [`nats::NatsConn`] (one connection per node), [`nats::NatsBus`],
//!   [`nats::NatsRecords`] (KV buckets), [`nats::NatsMembership`] (heartbeats).
//!
//! Every backend passes the same conformance suites (`tests/`).

mod local;
mod local_records;
mod memory_log;
pub mod nats;

pub use local::{LocalBus, LocalCluster, LocalMembership};
pub use local_records::LocalRecords;
