//! The NATS backends: [`NatsConn`] (the node's connection), [`NatsBus`],
//! [`NatsRecords`] and [`NatsMembership`], sharing one connection.
//!
//! Layout of subjects, streams and buckets: [`subject`]; the message
//! envelope: [`envelope`]; sequencing streams and history: [`history`].

mod bus;
mod conn;
mod envelope;
mod history;
mod membership;
mod records;
mod subject;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use bus::NatsBus;
pub use conn::{NatsConn, NatsOptions, NatsSetupError};
pub use membership::NatsMembership;
pub use records::NatsRecords;
pub use subject::PrefixError;

/// How often the same kind of bus problem is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs `message` at warn level at most once a minute per `key` (bad input on
/// the bus can arrive at line rate; the counters carry the volume).
pub(crate) fn log_once(key: &'static str, message: &str) {
    static LAST: OnceLock<Mutex<HashMap<&'static str, Instant>>> = OnceLock::new();
    let now = Instant::now();
    let mut last = LAST
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if last
        .get(key)
        .is_some_and(|t| now.duration_since(*t) < LOG_EVERY)
    {
        return;
    }
    last.insert(key, now);
    drop(last);
    tracing::warn!(problem = key, "{message}");
}
