//! The `switchboard` server: configuration, personas, the router that mounts
//! every enabled service, the ops endpoints, and the run loop with graceful shutdown.
//!
//! `main` only parses the command line, loads the configuration, sets up logging
//! and signals, and calls [`run`].

pub mod app;
pub mod cluster;
pub mod config;
pub mod console;
pub mod fdlimit;
pub mod logging;
pub mod ops;
pub mod persona;
pub mod profile;
pub mod reload;

pub use app::{App, run};
pub use config::{Config, ConfigError};
