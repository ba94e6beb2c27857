//! What a listener does when `accept()` fails (out of file descriptors, most
//! often): wait, doubling the wait from [`AcceptBackoff::FIRST`] up to
//! [`AcceptBackoff::MAX`], and log at most once per [`AcceptBackoff::LOG_EVERY`]
//! with the number of failures since the last line, never once per failure.
//!
//! [`AcceptBackoff`] is plain state driven by the caller's clock, so its rules
//! are tested without sockets or sleeps.

use std::time::Duration;

use tokio::time::Instant;

/// Backoff and log throttle for one listener's accept errors.
#[derive(Debug, Clone, Default)]
pub struct AcceptBackoff {
    /// The wait after the last failure; zero after a success.
    delay: Duration,
    /// When the last log line was written.
    logged_at: Option<Instant>,
    /// Failures since then, not yet in a log line.
    unlogged: u64,
}

/// What to do after one failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// Sleep this long before accepting again.
    pub wait: Duration,
    /// Write a log line saying this many accepts failed since the last one
    /// (this failure included); `None`: stay quiet.
    pub log: Option<u64>,
}

impl AcceptBackoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(5);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(1);
    /// At most one log line per this interval.
    pub const LOG_EVERY: Duration = Duration::from_secs(1);

    /// A failure at `now`.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        self.delay = if self.delay.is_zero() {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        self.unlogged += 1;
        let log = match self.logged_at {
            Some(t) if now.duration_since(t) < Self::LOG_EVERY => None,
            _ => {
                self.logged_at = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        };
        AfterFailure {
            wait: self.delay,
            log,
        }
    }

    /// An accept succeeded: the next failure waits [`Self::FIRST`] again. The
    /// log throttle keeps its memory, so errors that alternate with successes
    /// still give one line per interval.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_second_and_reset_on_success() {
        let mut b = AcceptBackoff::default();
        let t = Instant::now();
        let waits: Vec<u64> = (0..10)
            .map(|_| b.failed(t).wait.as_millis() as u64)
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(t).wait, AcceptBackoff::FIRST);
    }

    #[test]
    fn logs_once_per_interval_with_the_count() {
        let mut b = AcceptBackoff::default();
        let t = Instant::now();
        assert_eq!(b.failed(t).log, Some(1), "the first failure is logged");
        let mut quiet = 0;
        let mut at = t;
        // 20 failures a second for three seconds, with successes in between.
        let mut lines = Vec::new();
        for i in 1..=60 {
            at = t + Duration::from_millis(50 * i);
            match b.failed(at).log {
                Some(n) => lines.push(n),
                None => quiet += 1,
            }
            b.succeeded();
        }
        assert_eq!(
            lines,
            [20, 20, 20],
            "one line a second, counting the failures since the last"
        );
        assert_eq!(quiet, 57);
        // After a quiet spell the next failure is logged at once.
        assert_eq!(b.failed(at + Duration::from_secs(5)).log, Some(1));
    }
}
