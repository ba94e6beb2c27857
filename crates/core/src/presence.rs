//! [`Presence`]: cluster-wide exclusive claims held by live connections — who
//! is online under a name, which connection is a meeting member's current one.
//!
//! A claim is a [`Records`] entry (space given by the caller) naming its
//! [`Holder`], the node and connection. It is honoured while its holder is
//! alive: on another node, while [`Membership`] says that node is alive; on this
//! node, while the connection is registered and open (the `conn_alive` check
//! given at construction). A claim whose holder is gone is taken over by the
//! next claimant, so a node that died is no obstacle after the membership's
//! liveness timeout, and a socket that just ended on this node is none at all.
//!
//! Contract:
//! - **Exclusive.** At most one live connection holds a key cluster-wide: of
//!   concurrent claims for a free key exactly one wins (the records' create/update
//!   compare-and-set decides).
//! - **Released with its guard.** Dropping the [`ClaimGuard`] frees the key on
//!   this node at once and deletes the record (only if it is still ours) in the
//!   background, retried while the records backend is unreachable.
//! - **Swept.** When a node is declared dead, the live node with the lowest id
//!   deletes the records it held in every space used here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::membership::Membership;
use crate::records::{Records, RecordsError, Revision};
use crate::{ConnId, NodeId};

/// The live connection that holds a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder {
    /// Its node.
    pub node: NodeId,
    /// Its connection.
    pub conn: ConnId,
}

impl Holder {
    fn encode(self) -> Bytes {
        let mut b = BytesMut::with_capacity(12);
        b.put_u32(self.node.0);
        b.put_u64(self.conn.0);
        b.freeze()
    }

    fn decode(b: &[u8]) -> Option<Holder> {
        let node = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
        let conn = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
        Some(Holder {
            node: NodeId(node),
            conn: ConnId(conn),
        })
    }
}

/// Why a claim was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A live connection holds the key.
    #[error("held by connection {} on node {}", .0.conn, .0.node)]
    Taken(Holder),
    /// The records backend could not be reached.
    #[error("presence unavailable: {0}")]
    Unavailable(String),
}

impl From<RecordsError> for ClaimError {
    fn from(e: RecordsError) -> Self {
        ClaimError::Unavailable(e.to_string())
    }
}

/// Whether a connection of this node is still registered and open.
pub type ConnAlive = Arc<dyn Fn(ConnId) -> bool + Send + Sync>;

type Key = (&'static str, String);

struct Inner {
    records: Arc<dyn Records>,
    membership: Arc<dyn Membership>,
    conn_alive: ConnAlive,
    /// This node's claims: key -> (holder connection, record revision).
    mine: Mutex<HashMap<Key, (ConnId, Revision)>>,
    spaces: Mutex<HashSet<&'static str>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("node", &self.membership.node())
            .field("claims", &lock(&self.mine).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation; poisoning cannot leave it half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cluster-wide claims. Cheap to clone. See the module docs.
#[derive(Debug, Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

/// Attempts at a compare-and-set before giving up as unavailable (each retry
/// follows a concurrent change, so this bounds contention, not waiting).
const ATTEMPTS: usize = 8;

impl Presence {
    /// Claims on `records`, honoured by `membership`; `conn_alive` says whether a
    /// connection of this node is still open. Starts the sweeper if a runtime runs.
    pub fn new(
        records: Arc<dyn Records>,
        membership: Arc<dyn Membership>,
        conn_alive: ConnAlive,
    ) -> Self {
        let p = Presence {
            inner: Arc::new(Inner {
                records,
                membership,
                conn_alive,
                mine: Mutex::new(HashMap::new()),
                spaces: Mutex::new(HashSet::new()),
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweeper(Arc::downgrade(&p.inner)));
        }
        p
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.inner.membership.node()
    }

    fn holder_is_live(&self, space: &'static str, key: &str, h: Holder) -> bool {
        if h.node == self.node() {
            let mine = lock(&self.inner.mine)
                .get(&(space, key.to_owned()))
                .is_some_and(|(c, _)| *c == h.conn);
            mine && (self.inner.conn_alive)(h.conn)
        } else {
            self.inner.membership.is_alive(h.node)
        }
    }

    fn grant(&self, space: &'static str, key: &str, conn: ConnId, rev: Revision) -> ClaimGuard {
        lock(&self.inner.spaces).insert(space);
        lock(&self.inner.mine).insert((space, key.to_owned()), (conn, rev));
        ClaimGuard {
            presence: self.clone(),
            space,
            key: key.to_owned(),
            conn,
        }
    }

    /// Claims `key` in `space` for connection `conn` of this node: granted if the
    /// key is free or its holder is gone, else [`ClaimError::Taken`].
    pub async fn claim(
        &self,
        space: &'static str,
        key: &str,
        conn: ConnId,
    ) -> Result<ClaimGuard, ClaimError> {
        self.acquire(space, key, conn, false).await.map(|(g, _)| g)
    }

    /// Claims `key` for `conn` even if a live connection holds it; returns the
    /// previous live holder, which the caller tells to leave.
    pub async fn take_over(
        &self,
        space: &'static str,
        key: &str,
        conn: ConnId,
    ) -> Result<(ClaimGuard, Option<Holder>), ClaimError> {
        self.acquire(space, key, conn, true).await
    }

    async fn acquire(
        &self,
        space: &'static str,
        key: &str,
        conn: ConnId,
        force: bool,
    ) -> Result<(ClaimGuard, Option<Holder>), ClaimError> {
        let me = Holder {
            node: self.node(),
            conn,
        };
        let records = &self.inner.records;
        for _ in 0..ATTEMPTS {
            match records.create(space, key, me.encode()).await {
                Ok(rev) => return Ok((self.grant(space, key, conn, rev), None)),
                Err(RecordsError::Exists) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(current) = records.get(space, key).await? else {
                continue;
            };
            let holder = Holder::decode(&current.value);
            let live = holder.filter(|h| self.holder_is_live(space, key, *h));
            if let (Some(h), false) = (live, force) {
                return Err(ClaimError::Taken(h));
            }
            match records
                .update(space, key, me.encode(), current.revision)
                .await
            {
                Ok(rev) => return Ok((self.grant(space, key, conn, rev), live)),
                Err(RecordsError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClaimError::Unavailable(format!(
            "{space}: no stable answer after {ATTEMPTS} attempts"
        )))
    }

    /// The live holder of `key`, if any.
    pub async fn holder(
        &self,
        space: &'static str,
        key: &str,
    ) -> Result<Option<Holder>, ClaimError> {
        let Some(rec) = self.inner.records.get(space, key).await? else {
            return Ok(None);
        };
        Ok(Holder::decode(&rec.value).filter(|h| self.holder_is_live(space, key, *h)))
    }

    /// Whether a connection of this node holds `key` now.
    pub fn held_here(&self, space: &'static str, key: &str) -> bool {
        lock(&self.inner.mine)
            .get(&(space, key.to_owned()))
            .is_some_and(|(c, _)| (self.inner.conn_alive)(*c))
    }

    /// How many keys of `space` connections of this node hold.
    pub fn held_here_count(&self, space: &str) -> usize {
        lock(&self.inner.mine)
            .keys()
            .filter(|(s, _)| *s == space)
            .count()
    }

    fn release(&self, space: &'static str, key: String, conn: ConnId) {
        let rev = {
            let mut mine = lock(&self.inner.mine);
            let k = (space, key);
            match mine.get(&k) {
                Some((c, rev)) if *c == conn => {
                    let rev = *rev;
                    mine.remove(&k);
                    (k.1, rev)
                }
                _ => return,
            }
        };
        let (key, rev) = rev;
        let records = self.inner.records.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                match records.delete(space, &key, Some(rev)).await {
                    // Conflict: someone took it over since; not ours to delete.
                    Ok(()) | Err(RecordsError::Conflict) => return,
                    Err(RecordsError::Unavailable(_)) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    Err(_) => return,
                }
            }
        });
    }
}

/// Deletes the claims of departed nodes (run by the live node with the lowest id).
async fn sweeper(inner: std::sync::Weak<Inner>) {
    let mut departures = match inner.upgrade() {
        Some(i) => i.membership.departures(),
        None => return,
    };
    loop {
        let dead = match departures.recv().await {
            Ok(node) => node,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        let me = inner.membership.node();
        let lowest = inner.membership.live().iter().map(|n| n.id).min();
        if lowest != Some(me) {
            continue;
        }
        let spaces: Vec<&'static str> = lock(&inner.spaces).iter().copied().collect();
        let mut swept = 0usize;
        for space in spaces {
            let Ok(keys) = inner.records.keys(space).await else {
                continue;
            };
            for key in keys {
                let Ok(Some(rec)) = inner.records.get(space, &key).await else {
                    continue;
                };
                if Holder::decode(&rec.value).is_some_and(|h| h.node == dead)
                    && inner
                        .records
                        .delete(space, &key, Some(rec.revision))
                        .await
                        .is_ok()
                {
                    swept += 1;
                }
            }
        }
        tracing::info!(node = %dead, swept, "released the claims of a departed node");
    }
}

/// A granted claim; dropping it releases the key (if still ours).
pub struct ClaimGuard {
    presence: Presence,
    space: &'static str,
    key: String,
    conn: ConnId,
}

impl fmt::Debug for ClaimGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimGuard")
            .field("space", &self.space)
            .field("conn", &self.conn)
            .finish()
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.presence
            .release(self.space, std::mem::take(&mut self.key), self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_and_garbage_is_none() {
        let h = Holder {
            node: NodeId(0xdead_beef),
            conn: ConnId(0x0123_4567_89ab_cdef),
        };
        assert_eq!(Holder::decode(&h.encode()), Some(h));
        assert_eq!(Holder::decode(b"short"), None);
    }
}
