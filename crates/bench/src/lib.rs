//! `switchboard-bench`: a load generator for Switchboard.
//!
//! The binary (`src/main.rs`) parses the command line ([`cli`]), builds the
//! runtime and hands one scenario ([`scenario`]) a context. Scenarios are
//! built from shared plumbing:
//!
//! - [`net`]: target URL, dialing over many loopback source addresses,
//!   WebSocket handshakes, bounded concurrent connecting;
//! - [`http`]: a keep-alive POST client for publishing;
//! - [`payload`]: the stamped message format and the process clock;
//! - [`stats`]: sequence/order checking, latency histograms, tallies;
//! - [`progress`]: live counters and the progress line;
//! - [`report`]: summaries as text or JSON;
//! - [`plot`]: a sweep's results as an SVG line chart;
//! - [`compare`]: `--record` and `compare`, a rerun's figures as ratios to a
//!   recorded run;
//! - [`procfs`]: process memory and file limits;
//! - [`worker`]: child processes of the bench that hold a share of the
//!   connections;
//! - [`bare`]: the bare broadcast server (`bare-broadcast` binary), the
//!   yardstick `fanout --bare-url` compares pubsub with.

pub mod bare;
pub mod cli;
pub mod compare;
pub mod http;
pub mod net;
pub mod payload;
pub mod plot;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod worker;
