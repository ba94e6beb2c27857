//! Connection limits at the edge: how long an HTTP connection may take
//! ([`HttpTimeouts`]), how many connections may be open at once
//! ([`ConnectionCap`]), and how many per client address and how many upgrades
//! per client address per second ([`PerIp`]).
//!
//! A connection holds a [`CapGuard`] (and, with per-address limits, an
//! [`IpGuard`]) for as long as its file descriptor is open, WebSocket
//! included: the guards live in the connection's I/O wrapper.
//! What happens over a limit (503 or 429 with `Retry-After`, counted) is the
//! listener's business; see [`crate::listener`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long each phase of an HTTP connection may take before it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// A new connection must deliver its first request head within this time,
    /// and a later head must be complete this long after its first byte.
    pub header: Duration,
    /// A kept-alive connection may sit idle this long between requests.
    pub idle: Duration,
    /// A request body may pause this long between two pieces while the
    /// handler waits for it.
    pub body: Duration,
}

impl Default for HttpTimeouts {
    /// 10 s for a head, 60 s idle, 30 s for a stalled body.
    fn default() -> Self {
        HttpTimeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(30),
        }
    }
}

/// A limit on the connections open at once, shared by the listeners it is
/// given to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    inner: Arc<CapInner>,
}

#[derive(Debug)]
struct CapInner {
    max: usize,
    open: AtomicUsize,
}

impl ConnectionCap {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> Self {
        ConnectionCap {
            inner: Arc::new(CapInner {
                max,
                open: AtomicUsize::new(0),
            }),
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// A place for one more connection, or `None` at the limit.
    pub fn try_acquire(&self) -> Option<CapGuard> {
        let prev = self.inner.open.fetch_add(1, Ordering::AcqRel);
        if prev >= self.inner.max {
            self.inner.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(CapGuard(self.inner.clone()))
    }
}

/// One connection's place under a [`ConnectionCap`]; released on drop.
#[derive(Debug)]
pub struct CapGuard(Arc<CapInner>);

impl Drop for CapGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The key a client address is limited under: an IPv4 address, or the /64
/// network of an IPv6 address (one host usually holds a whole /64).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Limits per client address: open connections and WebSocket upgrades per
/// second. A limit of 0 is off. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PerIp {
    inner: Arc<PerIpInner>,
}

#[derive(Debug)]
struct PerIpInner {
    max_connections: u32,
    max_upgrades_per_sec: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
    upgrades: Mutex<RateWindows>,
}

/// Fixed one-second windows per address.
#[derive(Debug, Default)]
struct RateWindows {
    by_ip: HashMap<IpAddr, (Instant, u32)>,
    last_sweep: Option<Instant>,
}

impl PerIp {
    /// `max_connections` open at once and `max_upgrades_per_sec` upgrades per
    /// second per address; 0 turns that limit off.
    pub fn new(max_connections: u32, max_upgrades_per_sec: u32) -> Self {
        PerIp {
            inner: Arc::new(PerIpInner {
                max_connections,
                max_upgrades_per_sec,
                open: Mutex::default(),
                upgrades: Mutex::default(),
            }),
        }
    }

    /// Whether the per-address connection limit is on.
    pub fn limits_connections(&self) -> bool {
        self.inner.max_connections > 0
    }

    /// Whether the per-address upgrade rate is on.
    pub fn limits_upgrades(&self) -> bool {
        self.inner.max_upgrades_per_sec > 0
    }

    /// A place for one more connection from `ip`, or `None` at its limit
    /// (always a place when the limit is off).
    pub fn try_connect(&self, ip: IpAddr) -> Option<IpGuard> {
        let max = self.inner.max_connections;
        if max == 0 {
            return Some(IpGuard(None));
        }
        let key = ip_key(ip);
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpGuard(Some((self.inner.clone(), key))))
    }

    /// Counts one upgrade from `ip` at `now`; `false` when it is over the
    /// rate (always `true` when the limit is off).
    pub fn allow_upgrade(&self, ip: IpAddr, now: Instant) -> bool {
        let max = self.inner.max_upgrades_per_sec;
        if max == 0 {
            return true;
        }
        let second = Duration::from_secs(1);
        let mut w = self
            .inner
            .upgrades
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Forget windows that ended, now and then, so the map stays small.
        if w.last_sweep.is_none_or(|t| now.duration_since(t) >= second) {
            w.by_ip
                .retain(|_, (start, _)| now.duration_since(*start) < second);
            w.last_sweep = Some(now);
        }
        let entry = w.by_ip.entry(ip_key(ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= second {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// One connection's place under its address's limit; released on drop.
#[derive(Debug)]
pub struct IpGuard(Option<(Arc<PerIpInner>, IpAddr)>);

impl Drop for IpGuard {
    fn drop(&mut self) {
        if let Some((inner, key)) = self.0.take() {
            let mut open = inner.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_up_to_its_limit_and_frees_places_on_drop() {
        let cap = ConnectionCap::new(2);
        let a = cap.try_acquire().expect("first");
        let _b = cap.try_acquire().expect("second");
        assert!(cap.try_acquire().is_none());
        assert_eq!(cap.open(), 2);
        drop(a);
        assert!(cap.try_acquire().is_some());
    }

    #[test]
    fn per_address_connections_are_limited_and_v6_counts_by_64() {
        let ip = PerIp::new(1, 0);
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let g = ip.try_connect(v4).expect("first");
        assert!(ip.try_connect(v4).is_none());
        assert!(ip.try_connect("192.0.2.2".parse().unwrap()).is_some());
        drop(g);
        assert!(ip.try_connect(v4).is_some());
        let _h = ip.try_connect("2001:db8::1".parse().unwrap()).expect("v6");
        assert!(ip.try_connect("2001:db8::2".parse().unwrap()).is_none());
        assert!(ip.try_connect("2001:db8:0:1::1".parse().unwrap()).is_some());
        // Off: no limit, no bookkeeping.
        let off = PerIp::new(0, 0);
        let all: Vec<_> = (0..100).map(|_| off.try_connect(v4)).collect();
        assert!(all.iter().all(Option::is_some));
        assert!(off.inner.open.lock().unwrap().is_empty());
    }

    #[test]
    fn upgrades_per_second_are_limited_per_address() {
        let ip = PerIp::new(0, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Instant::now();
        assert!(ip.allow_upgrade(a, t));
        assert!(ip.allow_upgrade(a, t));
        assert!(!ip.allow_upgrade(a, t + Duration::from_millis(500)));
        assert!(ip.allow_upgrade(b, t + Duration::from_millis(500)));
        assert!(ip.allow_upgrade(a, t + Duration::from_secs(1)));
        assert!(PerIp::new(0, 0).allow_upgrade(a, t));
    }
}
