//! The console's recent history: one sample of live connections and messages
//! per [`INTERVAL`], the last [`SAMPLES`] of them, for the charts.
//!
//! One task ([`sample`]) appends; page requests read a copy. The std mutex is
//! held only to push or clone a few hundred numbers, never across an await.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::App;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Samples kept: five minutes.
pub const SAMPLES: usize = 150;

/// One point of the charts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub t: u64,
    /// Live WebSocket connections.
    pub connections: usize,
    /// Messages per second since the previous sample.
    pub messages_per_sec: f64,
}

/// The last [`SAMPLES`] samples; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    samples: VecDeque<Sample>,
    last_messages: Option<u64>,
}

impl History {
    /// Records the counters read at `t`: `connections` now and `messages` since start.
    pub fn record(&self, t: u64, connections: usize, messages: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rate = inner.last_messages.map_or(0.0, |last| {
            messages.saturating_sub(last) as f64 / INTERVAL.as_secs_f64()
        });
        inner.last_messages = Some(messages);
        if inner.samples.len() == SAMPLES {
            inner.samples.pop_front();
        }
        inner.samples.push_back(Sample {
            t,
            connections,
            messages_per_sec: rate,
        });
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.samples.iter().copied().collect()
    }
}

/// Samples `app`'s counters every [`INTERVAL`] until shutdown.
pub async fn sample(app: App) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (connections, messages) = super::totals(&app);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        app.history.record(now, connections, messages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_differences_and_old_samples_go() {
        let h = History::default();
        h.record(1, 3, 100);
        h.record(3, 4, 120);
        let s = h.samples();
        assert_eq!(s[0].messages_per_sec, 0.0);
        assert_eq!(s[1].messages_per_sec, 10.0);
        assert_eq!(s[1].connections, 4);
        for i in 0..SAMPLES as u64 {
            h.record(10 + i, 0, 0);
        }
        assert_eq!(h.samples().len(), SAMPLES);
        assert_eq!(h.samples()[0].t, 10);
    }
}
