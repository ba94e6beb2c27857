//! Brute-force throttling of the actions an attacker could guess at (a
//! resume id, the internal secret, a backend's checksum), per client address
//! and action, as the original does: after [`ThrottleConfig::max_attempts`]
//! failures (10) within [`ThrottleConfig::window`] (30 min) the address is
//! answered `too_many_requests` for that action until the oldest failure
//! leaves the window; before that, each failure's answer is delayed by
//! 100 ms·2ⁿ (n = failures already in the window), at most 25 s.
//!
//! Contract: [`Throttle::check`] before trying the action; on failure,
//! [`Throttle::failed`] records it and returns the delay to wait before
//! answering (the caller waits in its own task: the hub never sleeps). What
//! counts as a failure is the caller's choice: a resume id that was valid
//! but has expired is not one (mobile clients resume after long sleeps).
//!
//! Shared state without an actor: a sharded map of std mutexes, each held
//! for a few map operations and never across an `.await`. The map is
//! bounded ([`ThrottleConfig::max_entries`]); overflow policy **evict the
//! stalest**: a new address in a full shard first drops entries whose
//! failures have all left the window, then the entry whose last failure is
//! oldest, counted in `switchboard_talk_throttle_evictions_total`.
//! Time is `tokio::time::Instant`, so tests drive it with a paused clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use metrics::counter;
use tokio::time::Instant;

/// The actions throttled separately (the original's names in the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `hello` with a `resumeid` that can not be decoded.
    HelloResume,
    /// `hello` of an internal client with a wrong token.
    HelloInternal,
    /// `POST /api/v1/room/…` with a wrong checksum.
    BackendRoomAuth,
}

impl Action {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Action::HelloResume => "hello_resume",
            Action::HelloInternal => "hello_internal",
            Action::BackendRoomAuth => "backend_room_auth",
        }
    }
}

/// Bounds of the throttle.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures within `window` after which the action is refused (the original: 10).
    pub max_attempts: usize,
    /// How long a failure counts (the original: 30 min).
    pub window: Duration,
    /// Delay of the first failure's answer, doubled for each further one (100 ms).
    pub base_delay: Duration,
    /// Longest delay (25 s).
    pub max_delay: Duration,
    /// Addresses × actions remembered at once; beyond it the stalest is evicted.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_attempts: 10,
            window: Duration::from_secs(30 * 60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(25),
            max_entries: 65_536,
        }
    }
}

/// The answer to a throttled action: `too_many_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Too many requests.")]
pub struct TooManyRequests;

impl TooManyRequests {
    /// The spec's error code.
    pub const CODE: &'static str = "too_many_requests";
}

const SHARDS: usize = 16;

type Shard = HashMap<(IpAddr, Action), VecDeque<Instant>>;

/// The failure record of every (address, action); see the module's contract.
#[derive(Debug)]
pub struct Throttle {
    cfg: ThrottleConfig,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl Throttle {
    /// An empty record with these bounds.
    pub fn new(cfg: ThrottleConfig) -> Self {
        let per_shard = cfg.max_entries.div_ceil(SHARDS).max(1);
        Throttle {
            cfg,
            per_shard,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, addr: IpAddr) -> std::sync::MutexGuard<'_, Shard> {
        use std::hash::{BuildHasher as _, Hasher as _};
        // A fixed hasher: only the spread matters, not resistance to crafted keys
        // (a crafted address only crowds its own shard, which evicts stalest first).
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        std::hash::Hash::hash(&addr, &mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prune(&self, failures: &mut VecDeque<Instant>, now: Instant) {
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.cfg.window)
        {
            failures.pop_front();
        }
    }

    /// `Err` when `addr` has failed `action` too often lately: answer
    /// `too_many_requests` without trying (counted).
    pub fn check(&self, addr: IpAddr, action: Action) -> Result<(), TooManyRequests> {
        let now = Instant::now();
        let mut shard = self.shard(addr);
        let Some(failures) = shard.get_mut(&(addr, action)) else {
            return Ok(());
        };
        self.prune(failures, now);
        if failures.is_empty() {
            shard.remove(&(addr, action));
            return Ok(());
        }
        if failures.len() >= self.cfg.max_attempts {
            counter!("switchboard_talk_throttled_total", "action" => action.label()).increment(1);
            return Err(TooManyRequests);
        }
        Ok(())
    }

    /// Records a failure of `action` by `addr` and returns how long to wait
    /// before answering it.
    pub fn failed(&self, addr: IpAddr, action: Action) -> Duration {
        let now = Instant::now();
        let mut shard = self.shard(addr);
        let key = (addr, action);
        if !shard.contains_key(&key) && shard.len() >= self.per_shard {
            self.make_room(&mut shard, now);
        }
        let failures = shard.entry(key).or_default();
        self.prune(failures, now);
        let before = failures.len();
        failures.push_back(now);
        // Beyond the limit the action is refused anyway: keep the record bounded.
        while failures.len() > self.cfg.max_attempts {
            failures.pop_front();
        }
        self.delay(before)
    }

    /// The delay of a failure with `n` failures before it in the window.
    pub fn delay(&self, n: usize) -> Duration {
        let factor = 1u32
            .checked_shl(u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(u32::MAX);
        self.cfg
            .base_delay
            .checked_mul(factor)
            .map_or(self.cfg.max_delay, |d| d.min(self.cfg.max_delay))
    }

    fn make_room(&self, shard: &mut Shard, now: Instant) {
        let window = self.cfg.window;
        shard.retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < window));
        if shard.len() < self.per_shard {
            return;
        }
        let stalest = shard
            .iter()
            .min_by_key(|(_, f)| f.back().copied())
            .map(|(k, _)| *k);
        if let Some(k) = stalest {
            shard.remove(&k);
            counter!("switchboard_talk_throttle_evictions_total").increment(1);
        }
    }

    /// Addresses × actions remembered now (for tests and the console).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test(start_paused = true)]
    async fn ten_failures_in_30_minutes_are_refused_until_the_oldest_leaves() {
        let t = Throttle::new(ThrottleConfig::default());
        let a = ip("192.0.2.1");
        let mut delays = Vec::new();
        for _ in 0..10 {
            assert_eq!(t.check(a, Action::HelloResume), Ok(()));
            delays.push(t.failed(a, Action::HelloResume));
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25000, 25000]
        );
        let err = t.check(a, Action::HelloResume).unwrap_err();
        assert_eq!(
            (TooManyRequests::CODE, err.to_string().as_str()),
            ("too_many_requests", "Too many requests.")
        );
        // Other actions and other addresses are not affected.
        assert_eq!(t.check(a, Action::HelloInternal), Ok(()));
        assert_eq!(t.check(ip("192.0.2.2"), Action::HelloResume), Ok(()));
        assert_eq!(t.check(ip("2001:db8::1"), Action::HelloResume), Ok(()));
        // The first failure was at 0 s, now is 600 s: it leaves the window at 1800 s.
        tokio::time::advance(Duration::from_secs(1199)).await;
        assert!(t.check(a, Action::HelloResume).is_err(), "at 1799 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(t.check(a, Action::HelloResume), Ok(()), "at 1800 s");
        // Nine still count: the next failure waits 100 ms·2⁹, capped.
        assert_eq!(t.failed(a, Action::HelloResume), Duration::from_secs(25));
        assert!(t.check(a, Action::HelloResume).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_expire_and_the_record_empties() {
        let t = Throttle::new(ThrottleConfig::default());
        let a = ip("198.51.100.7");
        assert_eq!(
            t.failed(a, Action::BackendRoomAuth),
            Duration::from_millis(100)
        );
        assert_eq!(
            t.failed(a, Action::BackendRoomAuth),
            Duration::from_millis(200)
        );
        assert_eq!(t.len(), 1);
        tokio::time::advance(Duration::from_secs(30 * 60)).await;
        assert_eq!(t.check(a, Action::BackendRoomAuth), Ok(()));
        assert!(
            t.is_empty(),
            "an entry without failures in the window is dropped"
        );
        assert_eq!(
            t.failed(a, Action::BackendRoomAuth),
            Duration::from_millis(100)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_map_evicts_the_stalest_entry() {
        let t = Throttle::new(ThrottleConfig {
            max_entries: SHARDS, // one entry per shard
            ..ThrottleConfig::default()
        });
        // Fill every shard, each address failing at a distinct time.
        let mut addrs = Vec::new();
        for i in 0..=255u8 {
            let a = IpAddr::from([10, 0, 0, i]);
            let mut shard_len = 0;
            {
                let s = t.shard(a);
                shard_len += s.len();
            }
            if shard_len == 0 {
                for _ in 0..10 {
                    t.failed(a, Action::HelloResume);
                }
                addrs.push(a);
                tokio::time::advance(Duration::from_secs(1)).await;
            }
        }
        assert_eq!(t.len(), SHARDS);
        for a in &addrs {
            assert!(t.check(*a, Action::HelloResume).is_err());
        }
        // A new address lands in some full shard and evicts that shard's only entry.
        let newcomer = (0..=255u8)
            .map(|i| IpAddr::from([10, 1, 0, i]))
            .find(|a| !addrs.contains(a))
            .expect("an address");
        t.failed(newcomer, Action::HelloResume);
        assert_eq!(t.len(), SHARDS, "still bounded");
        let evicted: Vec<_> = addrs
            .iter()
            .filter(|a| t.check(**a, Action::HelloResume).is_ok())
            .collect();
        assert_eq!(evicted.len(), 1);
        // Expired entries go first, before anything live is evicted.
        tokio::time::advance(Duration::from_secs(30 * 60)).await;
        let before = t.len();
        t.failed(*evicted[0], Action::HelloInternal);
        assert!(t.len() <= before);
    }

    #[test]
    fn delays_double_and_cap() {
        let t = Throttle::new(ThrottleConfig::default());
        assert_eq!(t.delay(0), Duration::from_millis(100));
        assert_eq!(t.delay(7), Duration::from_millis(12_800));
        assert_eq!(t.delay(8), Duration::from_secs(25));
        assert_eq!(t.delay(40), Duration::from_secs(25));
        assert_eq!(t.delay(usize::MAX), Duration::from_secs(25));
    }
}
