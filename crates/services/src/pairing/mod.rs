//! The pairing service: a drop-in for Mozilla's channelserver (Firefox Accounts device pairing).

pub mod channel_id;
pub mod geo;
pub mod lang;
pub mod sender;
