//! [`Registry`]: the live connections of this node and the exclusive claims they hold.
//!
//! Every socket registers here for its lifetime (the guard unregisters), which
//! gives the connection gauges, a way to close connections from outside
//! (shutdown), and the liveness check [`Presence`](crate::Presence) uses for
//! this node's claims. Cluster-wide claims live in [`crate::presence`].
//!
//! Contract: all operations are short critical sections on `std` mutexes and
//! never wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{ConnId, Disconnect, OutboxSender};

#[derive(Debug, Default)]
struct Inner {
    conns: Mutex<HashMap<ConnId, Entry>>,
    total: AtomicUsize,
}

#[derive(Debug)]
struct Entry {
    service: &'static str,
    outbox: OutboxSender,
    /// A socket (counted in the gauges), or a service's internal endpoint.
    counted: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a single map operation; poisoning cannot leave it half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cheap, cloneable handle to this node's connection registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// Registers connection `conn` of `service` until the guard drops.
    pub fn register(
        &self,
        conn: ConnId,
        service: &'static str,
        outbox: OutboxSender,
    ) -> Registration {
        self.insert(conn, service, outbox, true)
    }

    /// Registers an endpoint of `service` that is not a socket (a meeting
    /// owner's command inbox, say) until the guard drops: it can hold
    /// [`Presence`](crate::Presence) claims and is closed by
    /// [`close_all`](Self::close_all), but is not counted as a connection.
    pub fn register_internal(
        &self,
        conn: ConnId,
        service: &'static str,
        outbox: OutboxSender,
    ) -> Registration {
        self.insert(conn, service, outbox, false)
    }

    fn insert(
        &self,
        conn: ConnId,
        service: &'static str,
        outbox: OutboxSender,
        counted: bool,
    ) -> Registration {
        lock(&self.inner.conns).insert(
            conn,
            Entry {
                service,
                outbox,
                counted,
            },
        );
        if counted {
            self.inner.total.fetch_add(1, Ordering::Relaxed);
        }
        Registration {
            registry: self.clone(),
            conn,
        }
    }

    /// Number of registered connections (internal endpoints not included).
    pub fn len(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of registered connections per service name.
    pub fn count_by_service(&self) -> HashMap<&'static str, usize> {
        let mut out = HashMap::new();
        for e in lock(&self.inner.conns).values().filter(|e| e.counted) {
            *out.entry(e.service).or_insert(0) += 1;
        }
        out
    }

    /// Closes every registered connection of `service` (or all, if `None`) with
    /// `reason`; returns how many were told.
    pub fn close_all(&self, service: Option<&str>, reason: &Disconnect) -> usize {
        let targets: Vec<OutboxSender> = lock(&self.inner.conns)
            .values()
            .filter(|e| service.is_none_or(|s| s == e.service))
            .map(|e| e.outbox.clone())
            .collect();
        for t in &targets {
            t.close(reason.clone());
        }
        targets.len()
    }

    /// Whether connection `conn` is registered and its outbox still open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        lock(&self.inner.conns)
            .get(&conn)
            .is_some_and(|e| !e.outbox.is_closed())
    }
}

/// Keeps a connection registered; dropping it unregisters.
#[derive(Debug)]
pub struct Registration {
    registry: Registry,
    conn: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if lock(&self.registry.inner.conns)
            .remove(&self.conn)
            .is_some_and(|e| e.counted)
        {
            self.registry.inner.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ConnIds, NodeId};
    use crate::{Outbox, OutboxLimits};

    #[test]
    fn is_open_follows_registration_and_close() {
        let reg = Registry::default();
        let ids = ConnIds::new(NodeId(1));
        let (tx, _rx) = Outbox::bounded(OutboxLimits::default());
        let id = ids.next();
        let r = reg.register(id, "rtc", tx.clone());
        assert!(reg.is_open(id));
        tx.close(Disconnect::PeerClosed);
        assert!(!reg.is_open(id));
        drop(r);
        assert!(!reg.is_open(id));
    }

    #[test]
    fn internal_endpoints_are_open_and_closable_but_not_counted() {
        let reg = Registry::default();
        let ids = ConnIds::new(NodeId(1));
        let (tx, _rx) = Outbox::bounded(OutboxLimits::default());
        let id = ids.next();
        let r = reg.register_internal(id, "meetings", tx.clone());
        assert!(reg.is_open(id));
        assert_eq!(reg.len(), 0);
        assert!(reg.count_by_service().is_empty());
        assert_eq!(reg.close_all(None, &Disconnect::Shutdown), 1);
        assert!(!reg.is_open(id));
        drop(r);
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn close_all_tells_every_connection_of_a_service() {
        let reg = Registry::default();
        let ids = ConnIds::new(NodeId(1));
        let (a_tx, _a) = Outbox::bounded(OutboxLimits::default());
        let (b_tx, _b) = Outbox::bounded(OutboxLimits::default());
        let _ra = reg.register(ids.next(), "pubsub", a_tx.clone());
        let _rb = reg.register(ids.next(), "rtc", b_tx.clone());
        assert_eq!(reg.close_all(Some("pubsub"), &Disconnect::Shutdown), 1);
        assert!(a_tx.is_closed());
        assert!(!b_tx.is_closed());
        assert_eq!(reg.len(), 2);
    }
}
