//! Live counters and the once-a-second progress line on stderr.
//!
//! Connection tasks add to the [`Progress`] counters (in batches on hot
//! paths); [`Ticker`] prints them with per-second rates. The counters are for
//! watching a run only: reports are built from each task's own final values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::report::fmt_count;

/// Counters shared by all tasks of one scenario run.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    phase: Mutex<&'static str>,
    /// Connections established.
    pub connected: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failed: AtomicU64,
    /// Messages sent (published).
    pub sent: AtomicU64,
    /// Messages received, summed over connections.
    pub received: AtomicU64,
    /// Connections the server ended (or that broke).
    pub disconnected: AtomicU64,
    /// Other errors.
    pub errors: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            phase: Mutex::new("start"),
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Progress::connected`].
    pub connected: u64,
    /// See [`Progress::connect_failed`].
    pub connect_failed: u64,
    /// See [`Progress::sent`].
    pub sent: u64,
    /// See [`Progress::received`].
    pub received: u64,
    /// See [`Progress::disconnected`].
    pub disconnected: u64,
    /// See [`Progress::errors`].
    pub errors: u64,
}

impl Progress {
    /// Names the current phase (shown in the progress line).
    pub fn set_phase(&self, phase: &'static str) {
        if let Ok(mut current) = self.phase.lock() {
            *current = phase;
        }
    }

    /// The current phase.
    pub fn phase(&self) -> &'static str {
        self.phase.lock().map_or("?", |p| *p)
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connect_failed: self.connect_failed.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Time since the counters were created.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Formats one progress line from two snapshots `dt` apart.
pub fn progress_line(
    elapsed: Duration,
    phase: &str,
    now: &Snapshot,
    before: &Snapshot,
    dt: Duration,
) -> String {
    let secs = dt.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| fmt_count((a.saturating_sub(b)) as f64 / secs);
    let mut line = format!(
        "[{:>6.1}s] {phase:<10} conn {}",
        elapsed.as_secs_f64(),
        now.connected
    );
    if now.connect_failed > 0 {
        let _ = write!(line, " (failed {})", now.connect_failed);
    }
    let _ = write!(
        line,
        " | sent {} ({}/s)",
        now.sent,
        rate(now.sent, before.sent)
    );
    let _ = write!(
        line,
        " | recv {} ({}/s)",
        fmt_count(now.received as f64),
        rate(now.received, before.received)
    );
    let _ = write!(line, " | disc {} | err {}", now.disconnected, now.errors);
    line
}

/// Prints a progress line to stderr every second until dropped.
#[derive(Debug)]
pub struct Ticker {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Ticker {
    /// Starts printing if `enabled`; otherwise does nothing.
    pub fn start(progress: Arc<Progress>, enabled: bool) -> Self {
        if !enabled {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            let mut before = progress.snapshot();
            let mut before_at = Instant::now();
            loop {
                interval.tick().await;
                let now = progress.snapshot();
                let at = Instant::now();
                let line = progress_line(
                    progress.elapsed(),
                    progress.phase(),
                    &now,
                    &before,
                    at - before_at,
                );
                eprintln!("{line}");
                before = now;
                before_at = at;
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_counts_and_rates() {
        let before = Snapshot {
            sent: 1000,
            received: 500_000,
            ..Snapshot::default()
        };
        let now = Snapshot {
            connected: 1000,
            sent: 2000,
            received: 1_500_000,
            disconnected: 2,
            ..Snapshot::default()
        };
        let line = progress_line(
            Duration::from_millis(3200),
            "publish",
            &now,
            &before,
            Duration::from_secs(1),
        );
        assert_eq!(
            line,
            "[   3.2s] publish    conn 1000 | sent 2000 (1.00k/s) | recv 1.50M (1.00M/s) | disc 2 | err 0"
        );
    }

    #[test]
    fn counters_add_up() {
        let progress = Progress::default();
        Progress::add(&progress.received, 5);
        Progress::add(&progress.received, 0);
        progress.set_phase("drain");
        assert_eq!(progress.snapshot().received, 5);
        assert_eq!(progress.phase(), "drain");
    }
}
