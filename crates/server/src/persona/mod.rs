//! Drop-in personas: each accepts an original server's command line and turns it
//! into a [`Config`](crate::Config) that serves that original's paths at the root.

pub mod channelserver;
pub mod goflag;
pub mod meetingserver;
pub mod pinghub;
pub mod signal_server;
pub mod spreed;
