//! Test helpers shared by the integration tests (dev-only).
//!
//! - [`ws`]: a WebSocket client with timeouts on every wait, so a hanging
//!   server fails a test instead of stalling it.
//! - [`http`]: a raw HTTP/1.1 client that can send exactly the bytes a test
//!   wants, malformed ones included.
//! - [`deps`]: the rule for external dependencies: loud skip on a developer
//!   machine, failure when `CI=true`.

pub mod deps;
pub mod http;
pub mod raw;
pub mod ws;

/// How long any single wait in a test may take before it fails.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
