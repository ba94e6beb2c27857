//! Switchboard's network edge.

pub mod client_ip;
