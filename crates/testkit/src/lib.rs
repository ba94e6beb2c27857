//! Test helpers shared by the integration tests of every crate (dev-only).
//!
//! - [`ws`]: a WebSocket client with timeouts on every wait, so a hanging
//!   server fails a test instead of stalling it.
//! - [`http`]: a raw HTTP/1.1 client that can send exactly the bytes a test
//!   wants, malformed ones included; [`raw`]: a WebSocket peer that reads only when told.
//! - [`deps`]: external dependencies and the rule for a missing one: loud skip
//!   on a developer machine, failure when `CI=true`.
//! - [`process`]: the real `switchboard` binary as a child ([`process::ServerProcess`]),
//!   bounded commands, scratch directories.
//! - [`pg`]: a fresh PostgreSQL database per test; [`nats`]: a `nats-server`
//!   per test on a dynamic port that can be stopped and restarted; [`proxy`]: a
//!   TCP forwarder a test can cut (a dependency that goes away); [`pgeu`]:
//!   pgeu-system's meetings tables in such a database.

pub mod deps;
pub mod http;
pub mod nats;
pub mod pg;
pub mod pgeu;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod ws;

/// How long any single wait in a test may take before it fails.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
