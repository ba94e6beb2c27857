//! [`RateLimiter`]: a token bucket per client address, for registrations.
//!
//! Each client address (an IPv6 client by its /64, the usual allocation to
//! one subscriber) gets `burst` tokens that refill at `per_minute`; a
//! registration takes one, and without one it is refused with the time until
//! the next. The table is bounded: once it tracks [`MAX_TRACKED`] addresses
//! and pruning full buckets frees nothing, new addresses share one overflow
//! bucket. The limit is per node (each node counts what it sees).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most addresses tracked before new ones share the overflow bucket.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    /// Unix-socket peers, and everyone once the table is full.
    Shared,
}

impl Key {
    fn of(ip: Option<IpAddr>) -> Key {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                Key::Addr(IpAddr::V6(seg.into()))
            }
            Some(ip) => Key::Addr(ip),
            None => Key::Shared,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A per-address token bucket. See the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` tokens a minute (0: no limit), `burst` at most (at least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Bucket>> {
        // Each critical section is one lookup and update; poisoning leaves no half-state.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token for `ip` at `now`, or says how long until one is available.
    pub fn check(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let mut map = self.lock();
        let mut key = Key::of(ip);
        if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
            let (per_sec, burst) = (self.per_sec, self.burst);
            map.retain(|_, b| refill(b, now, per_sec, burst) < burst);
            if map.len() >= MAX_TRACKED {
                key = Key::Shared;
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refill(bucket, now, self.per_sec, self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

/// The tokens `b` holds at `now`.
fn refill(b: &Bucket, now: Instant, per_sec: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * per_sec).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let l = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        }
        let wait = l.check(ip("192.0.2.1"), t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert_eq!(
            l.check(ip("192.0.2.2"), t0),
            Ok(()),
            "other addresses unaffected"
        );
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(1)),
            Ok(())
        );
        assert!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let l = RateLimiter::new(60, 1);
        let t0 = Instant::now();
        assert_eq!(l.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(l.check(ip("::ffff:192.0.2.9"), t0), Ok(()));
        assert!(
            l.check(ip("192.0.2.9"), t0).is_err(),
            "mapped v4 is the v4 address"
        );
    }

    #[test]
    fn zero_per_minute_disables_the_limit() {
        let l = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        }
    }
}
