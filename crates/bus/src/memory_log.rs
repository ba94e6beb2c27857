//! [`MemoryLogs`]: topic histories kept in memory, for the in-process bus.
//!
//! Offsets come from one counter for all topics (as a JetStream stream's
//! sequence does), so they increase along each topic and are never reused
//! within an epoch, even when a topic's log empties and is forgotten. Each log
//! remembers the newest offset it dropped; a subscriber at offset `o` can
//! recover exactly when nothing newer than `o` was dropped. A forgotten log's
//! drops are folded into one watermark, which new logs start from (erring
//! towards "expired", never towards a silent gap). The epoch is drawn at random
//! when the process starts: a restart loses the memory, and clients learn it
//! from the epoch. Logs are trimmed to `max_messages` on append and to
//! `max_age` on every read and on a sweep at most every few seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::Frame;
use switchboard_core::bus::{History, HistoryError, HistoryQuery, Retention};

/// How often all logs are swept for expired messages.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Log {
    entries: VecDeque<(u64, Instant, Bytes)>,
    max_age: Duration,
    /// The newest offset appended.
    top: u64,
    /// The newest offset dropped (or a bound on it; 0 = none).
    dropped: u64,
}

impl Log {
    fn trim(&mut self, now: Instant) {
        while let Some((o, at, _)) = self.entries.front() {
            if now.duration_since(*at) <= self.max_age {
                break;
            }
            self.dropped = *o;
            self.entries.pop_front();
        }
    }
}

struct State {
    logs: HashMap<Arc<str>, Log>,
    swept: Instant,
    /// The offset the next message gets, whatever its topic.
    next: u64,
    /// The newest offset dropped from a log that was then forgotten.
    forgotten: u64,
}

/// The histories of every topic that keeps one, with one epoch.
pub(crate) struct MemoryLogs {
    epoch: Arc<str>,
    state: Mutex<State>,
}

impl MemoryLogs {
    pub(crate) fn new() -> Self {
        MemoryLogs {
            epoch: Arc::from(format!("m{:016x}", rand::random::<u64>())),
            state: Mutex::new(State {
                logs: HashMap::new(),
                swept: Instant::now(),
                next: 1,
                forgotten: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the logs consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `text` to `topic`'s log; returns its offset and the epoch.
    pub(crate) fn append(&self, topic: &str, text: Bytes, r: &Retention) -> (u64, Arc<str>) {
        let now = Instant::now();
        let mut st = self.lock();
        if now.duration_since(st.swept) >= SWEEP_EVERY {
            st.swept = now;
            let mut forgotten = st.forgotten;
            st.logs.retain(|_, log| {
                log.trim(now);
                let keep = !log.entries.is_empty();
                if !keep {
                    forgotten = forgotten.max(log.dropped);
                }
                keep
            });
            st.forgotten = forgotten;
        }
        let offset = st.next;
        st.next += 1;
        let start = st.forgotten;
        let log = st.logs.entry(Arc::from(topic)).or_insert_with(|| Log {
            entries: VecDeque::new(),
            max_age: r.max_age,
            top: 0,
            dropped: start,
        });
        log.top = offset;
        log.entries.push_back((offset, now, text));
        while log.entries.len() > r.max_messages {
            if let Some((o, _, _)) = log.entries.pop_front() {
                log.dropped = o;
            }
        }
        (offset, self.epoch.clone())
    }

    /// Reads `topic`'s history as `query` asks.
    pub(crate) fn read(
        &self,
        topic: &str,
        query: &HistoryQuery,
        r: &Retention,
    ) -> Result<History, HistoryError> {
        let mut st = self.lock();
        let now = Instant::now();
        let next = st.next;
        let forgotten = st.forgotten;
        let (top, dropped, kept): (u64, u64, Vec<(u64, Bytes)>) = match st.logs.get_mut(topic) {
            Some(log) => {
                log.trim(now);
                (
                    log.top,
                    log.dropped,
                    log.entries
                        .iter()
                        .map(|(o, _, t)| (*o, t.clone()))
                        .collect(),
                )
            }
            None => (0, forgotten, Vec::new()),
        };
        drop(st);
        let epoch = self.epoch.clone();
        let from = match query {
            HistoryQuery::Last(n) => kept.len().saturating_sub(*n),
            HistoryQuery::After {
                epoch: theirs,
                offset,
            } => {
                if theirs.as_str() != &*epoch || *offset >= next {
                    return Err(HistoryError::EpochChanged { epoch, top });
                }
                if *offset < dropped {
                    return Err(HistoryError::Expired { epoch, top });
                }
                kept.partition_point(|(o, _)| o <= offset)
            }
        };
        let frames = kept[from..]
            .iter()
            .map(|(o, t)| Frame::logged(*o, epoch.clone(), t.clone(), r.render))
            .collect();
        Ok(History { epoch, frames, top })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(_: u64, _: &str, t: &[u8]) -> Bytes {
        Bytes::copy_from_slice(t)
    }

    fn retention(max_messages: usize) -> Retention {
        Retention {
            prefix: String::new(),
            max_messages,
            max_age: Duration::from_secs(3600),
            render,
        }
    }

    fn texts(h: &History) -> Vec<(u64, String)> {
        h.frames
            .iter()
            .map(|f| {
                (
                    f.offset().unwrap(),
                    String::from_utf8(f.payload().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn last_after_and_the_gap_rule() {
        let logs = MemoryLogs::new();
        let r = retention(3);
        for i in 1..=5 {
            let (o, _) = logs.append("t", Bytes::from(format!("m{i}")), &r);
            assert_eq!(o, i);
        }
        let last2 = logs.read("t", &HistoryQuery::Last(2), &r).unwrap();
        assert_eq!(texts(&last2), [(4, "m4".into()), (5, "m5".into())]);
        assert_eq!(last2.top, 5);
        let epoch = last2.epoch.to_string();
        let after = |offset| HistoryQuery::After {
            epoch: epoch.clone(),
            offset,
        };
        // Kept: 3, 4, 5. After 2 is exactly what is kept; after 1 misses 2.
        assert_eq!(logs.read("t", &after(2), &r).unwrap().frames.len(), 3);
        assert_eq!(logs.read("t", &after(4), &r).unwrap().frames.len(), 1);
        assert_eq!(logs.read("t", &after(5), &r).unwrap().frames.len(), 0);
        assert!(matches!(
            logs.read("t", &after(1), &r),
            Err(HistoryError::Expired { top: 5, .. })
        ));
        assert!(matches!(
            logs.read("t", &after(9), &r),
            Err(HistoryError::EpochChanged { .. })
        ));
        let other = HistoryQuery::After {
            epoch: "other".into(),
            offset: 5,
        };
        assert!(matches!(
            logs.read("t", &other, &r),
            Err(HistoryError::EpochChanged { .. })
        ));
        let empty = logs.read("none", &HistoryQuery::Last(10), &r).unwrap();
        assert_eq!((empty.top, empty.frames.len()), (0, 0));
    }

    #[test]
    fn offsets_are_never_reused_when_a_log_is_forgotten() {
        let logs = MemoryLogs::new();
        let (a, epoch) = logs.append("a", Bytes::from_static(b"a1"), &retention(10));
        let (b, _) = logs.append("b", Bytes::from_static(b"b1"), &retention(10));
        assert!(b > a, "one counter for every topic");
        let after = |offset| HistoryQuery::After {
            epoch: epoch.to_string(),
            offset,
        };
        // `a`'s only message ages out, and the next append sweeps.
        {
            let mut st = logs.lock();
            let log = st.logs.get_mut("a").unwrap();
            log.max_age = Duration::ZERO;
            log.entries[0].1 -= Duration::from_millis(1);
            st.swept -= SWEEP_EVERY;
        }
        let (a2, _) = logs.append("a", Bytes::from_static(b"a2"), &retention(10));
        assert!(a2 > b, "a forgotten log's offsets are not reused");
        // A client that had a1 missed nothing: a2 is what followed.
        let h = logs.read("a", &after(a), &retention(10)).unwrap();
        assert_eq!(texts(&h), [(a2, "a2".into())]);
        // One from before a1 cannot know: a1 is gone.
        assert!(matches!(
            logs.read("a", &after(a - 1), &retention(10)),
            Err(HistoryError::Expired { .. })
        ));
    }
}
