//! Switchboard's services. Each module owns one protocol: its wire types, its
//! codec, and the per-connection state machine that maps frames to core calls.
//! Only this crate knows wire formats.

pub mod echo;
pub mod meetings;
pub mod pairing;
pub mod pubsub;
pub mod rtc;
pub mod talk;
