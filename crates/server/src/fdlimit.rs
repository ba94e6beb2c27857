//! The open-file limit: raised once per process from its soft value to the
//! hard one, logged, and turned into the default connection cap.
//!
//! Every connection is a file descriptor. The cap keeps [`RESERVE`]
//! descriptors free for what must keep working when the listeners are full:
//! the ops listener (at most [`OPS_MAX_CONNECTIONS`]), refusals being
//! answered, the store's pool, NATS, log files.

use std::sync::OnceLock;

/// Descriptors kept out of the connection cap.
pub const RESERVE: u64 = 64;

/// Connections open at once on the ops listener (`/metrics`, `/healthz`).
pub const OPS_MAX_CONNECTIONS: usize = 16;

/// The process's open-file limits after the raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit found at start.
    pub was: u64,
    /// The soft limit now (the hard limit, if raising worked).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

impl OpenFiles {
    /// The default `server.max_connections`: the soft limit minus [`RESERVE`]
    /// (at least 1; "unlimited" counts as 2^20).
    pub fn connection_cap(&self) -> usize {
        let soft = self.soft.min(1 << 20);
        soft.saturating_sub(RESERVE).max(1) as usize
    }
}

/// Raises the soft open-file limit to the hard limit, once per process, and
/// logs both numbers; later calls return the first result.
pub fn raise() -> OpenFiles {
    static ONCE: OnceLock<OpenFiles> = OnceLock::new();
    *ONCE.get_or_init(|| {
        let (was, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
        let soft = match rlimit::increase_nofile_limit(hard) {
            Ok(soft) => soft,
            Err(e) => {
                tracing::warn!(error = %e, soft = was, hard, "cannot raise the open-file limit");
                was
            }
        };
        tracing::info!(soft, hard, was, "open-file limit (soft raised to hard)");
        OpenFiles { was, soft, hard }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve() {
        let f = |soft| OpenFiles {
            was: 1024,
            soft,
            hard: soft,
        };
        assert_eq!(f(20_000).connection_cap(), 19_936);
        assert_eq!(f(10).connection_cap(), 1);
        assert_eq!(f(u64::MAX).connection_cap(), (1 << 20) - 64);
        let now = raise();
        assert!(now.was <= now.soft && now.soft <= now.hard, "{now:?}");
        assert_eq!(raise(), now, "raised once");
    }
}
