//! [`Registry`]: the live connections of this node and the exclusive claims they hold.
//!
//! Every socket registers here for its lifetime (the guard unregisters), which
//! gives the connection gauges and a way to close connections from outside
//! (admin kick, shutdown). A [`Claim`] reserves a key (say, a user name) for one
//! connection: the first claimant wins until its guard drops.
//!
//! Contract: all operations are short critical sections on `std` mutexes and
//! never wait. Claims are per node; several nodes would move them to the
//! store (see ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{ConnId, Disconnect, OutboxSender};

/// Claims by (namespace, key): the holder's connection and outbox.
type Claims = HashMap<(&'static str, String), (ConnId, OutboxSender)>;

#[derive(Debug, Default)]
struct Inner {
    conns: Mutex<HashMap<ConnId, Entry>>,
    claims: Mutex<Claims>,
    total: AtomicUsize,
}

#[derive(Debug)]
struct Entry {
    service: &'static str,
    outbox: OutboxSender,
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

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another live connection holds the key.
    #[error("already claimed by a live connection")]
    Taken,
}

impl Registry {
    /// Registers connection `conn` of `service` until the guard drops.
    pub fn register(
        &self,
        conn: ConnId,
        service: &'static str,
        outbox: OutboxSender,
    ) -> Registration {
        lock(&self.inner.conns).insert(conn, Entry { service, outbox });
        self.inner.total.fetch_add(1, Ordering::Relaxed);
        Registration {
            registry: self.clone(),
            conn,
        }
    }

    /// Number of registered connections.
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
        for e in lock(&self.inner.conns).values() {
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

    /// Reserves `key` in `namespace` for `conn` until the returned guard drops.
    pub fn claim(
        &self,
        namespace: &'static str,
        key: &str,
        conn: ConnId,
        outbox: OutboxSender,
    ) -> Result<Claim, ClaimError> {
        let mut claims = lock(&self.inner.claims);
        let k = (namespace, key.to_owned());
        if claims
            .get(&k)
            .is_some_and(|(_, holder)| !holder.is_closed())
        {
            return Err(ClaimError::Taken);
        }
        claims.insert(k.clone(), (conn, outbox));
        Ok(Claim {
            registry: self.clone(),
            key: k,
            conn,
        })
    }

    /// The outbox of the live connection holding `key`, if any.
    pub fn claimed(&self, namespace: &'static str, key: &str) -> Option<(ConnId, OutboxSender)> {
        lock(&self.inner.claims)
            .get(&(namespace, key.to_owned()))
            .filter(|(_, o)| !o.is_closed())
            .cloned()
    }

    /// Closes the holders of every claim in `namespace`; returns how many.
    pub fn close_claims(&self, namespace: &str, reason: &Disconnect) -> usize {
        let holders: Vec<OutboxSender> = lock(&self.inner.claims)
            .iter()
            .filter(|((ns, _), _)| *ns == namespace)
            .map(|(_, (_, o))| o.clone())
            .collect();
        for h in &holders {
            h.close(reason.clone());
        }
        holders.len()
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
            .is_some()
        {
            self.registry.inner.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An exclusive claim on a key; dropping it releases the key (if still ours).
#[derive(Debug)]
pub struct Claim {
    registry: Registry,
    key: (&'static str, String),
    conn: ConnId,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = lock(&self.registry.inner.claims);
        if claims.get(&self.key).is_some_and(|(c, _)| *c == self.conn) {
            claims.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ConnIds, NodeId};
    use crate::{Outbox, OutboxLimits};

    #[test]
    fn first_claim_wins_until_released() {
        let reg = Registry::default();
        let ids = ConnIds::new(NodeId(1));
        let (a_tx, _a) = Outbox::bounded(OutboxLimits::default());
        let (b_tx, _b) = Outbox::bounded(OutboxLimits::default());
        let a = reg.claim("rtc", "alice", ids.next(), a_tx).unwrap();
        let b_id = ids.next();
        assert_eq!(
            reg.claim("rtc", "alice", b_id, b_tx.clone()).unwrap_err(),
            ClaimError::Taken
        );
        drop(a);
        assert!(reg.claim("rtc", "alice", b_id, b_tx).is_ok());
    }

    #[test]
    fn a_closed_holder_does_not_block_a_new_claim() {
        let reg = Registry::default();
        let ids = ConnIds::new(NodeId(1));
        let (a_tx, _a) = Outbox::bounded(OutboxLimits::default());
        let _a = reg.claim("rtc", "bob", ids.next(), a_tx.clone()).unwrap();
        a_tx.close(Disconnect::PeerClosed);
        let (b_tx, _b) = Outbox::bounded(OutboxLimits::default());
        let b = reg.claim("rtc", "bob", ids.next(), b_tx);
        assert!(b.is_ok());
        assert!(reg.claimed("rtc", "bob").is_some());
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
