//! [`Hub`]: topic -> local subscribers, and fan-out that never waits for a client.
//!
//! The map is split into shards by a hash of the topic; each shard is a
//! `std::sync::Mutex` held only for the length of one subscribe, unsubscribe or
//! fan-out loop, never across an `.await`.
//!
//! Contract:
//! - **Ordering.** A topic's fan-out runs under its shard lock, so every
//!   subscriber of a topic sees the topic's messages in one and the same order,
//!   whichever tasks publish them.
//! - **Never awaits a client** (invariant 1). Delivery is [`OutboxSender::push`];
//!   a subscriber whose outbox overflows is closed as a slow consumer by the
//!   outbox and removed from the topic at once. Other subscribers are unaffected.
//! - **Encode once** (invariant 2). One [`Frame`] is cloned (a refcount bump) per subscriber.
//! - **Lifecycle.** A topic exists while it has subscribers. Adding the first
//!   subscriber and removing the last are atomic with lookup under the shard lock,
//!   and removal is by subscriber identity, so a late unsubscribe can never remove
//!   a newer subscription (both Pinghub races are impossible by construction).
//! - **Interest.** An optional [`InterestHook`] hears, under the shard lock and so
//!   in order, when a topic gains its first or loses its last local subscriber;
//!   a bus uses it to (un)subscribe the node on other nodes.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{ConnId, Disconnect, Frame, OutboxSender, PushError};

/// Told when a topic gains its first (`true`) or loses its last (`false`) local
/// subscriber. Called with the shard lock held: it must not block or call back into the hub.
pub type InterestHook = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// What one local fan-out did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Subscribers the frame was queued for.
    pub delivered: usize,
    /// Subscribers disconnected because their outbox overflowed.
    pub overflowed: usize,
}

#[derive(Debug)]
struct Subscriber {
    conn: ConnId,
    outbox: OutboxSender,
}

type Shard = HashMap<Arc<str>, Vec<Subscriber>>;

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    topics: AtomicUsize,
    subscribers: AtomicUsize,
    interest: Option<InterestHook>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("shards", &self.shards.len())
            .field("topics", &self.topics)
            .field("subscribers", &self.subscribers)
            .finish()
    }
}

/// A cheap, cloneable handle to the topic map of this node.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(64, None)
    }
}

impl Hub {
    /// A hub with `shards` shards (at least one) and an optional interest hook.
    pub fn new(shards: usize, interest: Option<InterestHook>) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        Hub {
            inner: Arc::new(Inner {
                shards,
                topics: AtomicUsize::new(0),
                subscribers: AtomicUsize::new(0),
                interest,
            }),
        }
    }

    fn shard(&self, topic: &str) -> MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        topic.hash(&mut h);
        let i = (h.finish() % self.inner.shards.len() as u64) as usize;
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.inner.shards[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `outbox` (owned by connection `conn`) to `topic`.
    ///
    /// The subscription lasts until the returned guard is dropped. Once this
    /// returns, every later publish to `topic` reaches `outbox`.
    pub fn subscribe(&self, topic: &str, conn: ConnId, outbox: OutboxSender) -> Subscription {
        let key: Arc<str> = Arc::from(topic);
        let mut shard = self.shard(topic);
        let subs = shard.entry(key.clone()).or_default();
        let first = subs.is_empty();
        subs.push(Subscriber { conn, outbox });
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        if first {
            self.inner.topics.fetch_add(1, Ordering::Relaxed);
            if let Some(hook) = &self.inner.interest {
                hook(topic, true);
            }
        }
        drop(shard);
        Subscription {
            hub: self.clone(),
            topic: key,
            conn,
        }
    }

    fn unsubscribe(&self, topic: &str, conn: ConnId) {
        let mut shard = self.shard(topic);
        self.remove_where(&mut shard, topic, |s| s.conn == conn);
    }

    /// Removes the subscribers of `topic` matching `gone`, and the topic itself
    /// (telling the interest hook) when none is left. Runs under the shard lock.
    fn remove_where(&self, shard: &mut Shard, topic: &str, gone: impl Fn(&Subscriber) -> bool) {
        let Some(subs) = shard.get_mut(topic) else {
            return;
        };
        let before = subs.len();
        subs.retain(|s| !gone(s));
        self.inner
            .subscribers
            .fetch_sub(before - subs.len(), Ordering::Relaxed);
        if subs.is_empty() {
            shard.remove(topic);
            self.inner.topics.fetch_sub(1, Ordering::Relaxed);
            if let Some(hook) = &self.inner.interest {
                hook(topic, false);
            }
        }
    }

    /// Queues `frame` for every local subscriber of `topic` except `except`.
    ///
    /// Returns how many got it and how many overflowed. Never waits.
    pub fn publish(&self, topic: &str, frame: &Frame, except: Option<ConnId>) -> Fanout {
        let mut out = Fanout::default();
        let mut shard = self.shard(topic);
        let Some(subs) = shard.get_mut(topic) else {
            return out;
        };
        let mut dead = false;
        for s in subs.iter() {
            if Some(s.conn) == except {
                continue;
            }
            match s.outbox.push(frame.clone()) {
                Ok(()) => out.delivered += 1,
                Err(PushError::Overflow) => {
                    out.overflowed += 1;
                    dead = true;
                }
                Err(PushError::Closed) => dead = true,
            }
        }
        if dead {
            self.remove_where(&mut shard, topic, |s| s.outbox.is_closed());
        }
        out
    }

    /// Ends every local subscriber of `topic` except `except` with `reason` and
    /// removes them. Returns how many were ended.
    pub fn close_topic(&self, topic: &str, reason: &Disconnect, except: Option<ConnId>) -> usize {
        let mut shard = self.shard(topic);
        let Some(subs) = shard.get(topic) else {
            return 0;
        };
        let mut n = 0;
        for s in subs.iter().filter(|s| Some(s.conn) != except) {
            s.outbox.close(reason.clone());
            n += 1;
        }
        self.remove_where(&mut shard, topic, |s| Some(s.conn) != except);
        n
    }

    /// Number of local subscribers of `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic).get(topic).map_or(0, Vec::len)
    }

    /// The connections subscribed to `topic`, in subscription order.
    pub fn subscribers(&self, topic: &str) -> Vec<ConnId> {
        self.shard(topic)
            .get(topic)
            .map(|v| v.iter().map(|s| s.conn).collect())
            .unwrap_or_default()
    }

    /// Number of topics with at least one local subscriber.
    pub fn topic_count(&self) -> usize {
        self.inner.topics.load(Ordering::Relaxed)
    }

    /// Number of topics whose name starts with `prefix` (walks every shard; for gauges, not hot paths).
    pub fn topic_count_with_prefix(&self, prefix: &str) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                shard.keys().filter(|k| k.starts_with(prefix)).count()
            })
            .sum()
    }

    /// The topics whose name starts with `prefix` (walks every shard; for reports, not hot paths).
    pub fn topics_with_prefix(&self, prefix: &str) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for s in self.inner.shards.iter() {
            let shard = s.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.keys().filter(|k| k.starts_with(prefix)).cloned());
        }
        out
    }

    /// Number of subscriptions across all topics.
    pub fn subscription_count(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }
}

/// A live subscription; dropping it unsubscribes (by identity, idempotently).
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    topic: Arc<str>,
    conn: ConnId,
}

impl Subscription {
    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.topic, self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ConnIds, NodeId};
    use crate::{Outbox, OutboxLimits, OutboxReceiver};

    fn conn(ids: &ConnIds, limits: OutboxLimits) -> (ConnId, OutboxSender, OutboxReceiver) {
        let (tx, rx) = Outbox::bounded(limits);
        (ids.next(), tx, rx)
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_frame_in_one_order() {
        let hub = Hub::default();
        let ids = ConnIds::new(NodeId(1));
        let mut conns = Vec::new();
        let mut subs = Vec::new();
        for _ in 0..3 {
            let (id, tx, rx) = conn(&ids, OutboxLimits::default());
            subs.push(hub.subscribe("/t", id, tx));
            conns.push(rx);
        }
        for i in 0..10 {
            let f = hub.publish("/t", &Frame::text(format!("{i}")), None);
            assert_eq!(
                f,
                Fanout {
                    delivered: 3,
                    overflowed: 0
                }
            );
        }
        for rx in &mut conns {
            let mut buf = Vec::new();
            rx.recv_many(&mut buf).await.unwrap();
            let got: Vec<String> = buf
                .iter()
                .map(|f| String::from_utf8(f.payload().to_vec()).unwrap())
                .collect();
            assert_eq!(got, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn except_skips_the_sender() {
        let hub = Hub::default();
        let ids = ConnIds::new(NodeId(1));
        let (a, atx, _arx) = conn(&ids, OutboxLimits::default());
        let (b, btx, _brx) = conn(&ids, OutboxLimits::default());
        let _sa = hub.subscribe("c", a, atx);
        let _sb = hub.subscribe("c", b, btx);
        assert_eq!(hub.publish("c", &Frame::text("x"), Some(a)).delivered, 1);
    }

    #[tokio::test]
    async fn close_topic_ends_every_subscriber_but_the_excepted_one() {
        let hub = Hub::default();
        let ids = ConnIds::new(NodeId(1));
        let (a, atx, mut arx) = conn(&ids, OutboxLimits::default());
        let (b, btx, _brx) = conn(&ids, OutboxLimits::default());
        let _sa = hub.subscribe("t", a, atx);
        let _sb = hub.subscribe("t", b, btx.clone());
        assert_eq!(hub.close_topic("t", &Disconnect::Shutdown, Some(b)), 1);
        let mut buf = Vec::new();
        assert_eq!(arx.recv_many(&mut buf).await, Err(Disconnect::Shutdown));
        assert!(!btx.is_closed());
        assert_eq!(hub.subscribers("t"), vec![b]);
    }

    #[test]
    fn topic_lives_exactly_while_it_has_subscribers() {
        let hub = Hub::default();
        let ids = ConnIds::new(NodeId(1));
        let (a, atx, _arx) = conn(&ids, OutboxLimits::default());
        let s = hub.subscribe("t", a, atx);
        assert_eq!(hub.topic_count(), 1);
        drop(s);
        assert_eq!(hub.topic_count(), 0);
        assert_eq!(hub.publish("t", &Frame::text("x"), None).delivered, 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_closed_and_removed_without_harming_others() {
        let hub = Hub::default();
        let ids = ConnIds::new(NodeId(1));
        let small = OutboxLimits::capped(2, 1 << 20);
        let (slow, stx, mut srx) = conn(&ids, small);
        let (fast, ftx, mut frx) = conn(&ids, OutboxLimits::default());
        let _s1 = hub.subscribe("t", slow, stx);
        let _s2 = hub.subscribe("t", fast, ftx);
        let mut fast_buf = Vec::new();
        for i in 0..5 {
            hub.publish("t", &Frame::text(format!("{i}")), None);
            frx.recv_many(&mut fast_buf).await.unwrap();
        }
        assert_eq!(fast_buf.len(), 5);
        assert_eq!(hub.subscribers("t"), vec![fast]);
        let mut buf = Vec::new();
        srx.recv_many(&mut buf).await.unwrap();
        assert_eq!(buf.len(), 2);
        assert_eq!(srx.recv_many(&mut buf).await, Err(Disconnect::SlowConsumer));
    }

    #[test]
    fn interest_hook_hears_first_and_last_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        let hook: InterestHook = Arc::new(move |t: &str, on: bool| {
            l2.lock().unwrap().push((t.to_owned(), on));
        });
        let hub = Hub::new(4, Some(hook));
        let ids = ConnIds::new(NodeId(1));
        let (a, atx, _ra) = conn(&ids, OutboxLimits::default());
        let (b, btx, _rb) = conn(&ids, OutboxLimits::default());
        let sa = hub.subscribe("t", a, atx);
        let sb = hub.subscribe("t", b, btx);
        drop(sa);
        drop(sb);
        assert_eq!(
            *log.lock().unwrap(),
            vec![("t".to_owned(), true), ("t".to_owned(), false)]
        );
    }

    #[test]
    fn concurrent_join_and_leave_of_one_topic_never_loses_or_leaks() {
        let hub = Hub::new(2, None);
        let ids = Arc::new(ConnIds::new(NodeId(1)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let hub = hub.clone();
                let ids = ids.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let (tx, _rx) = Outbox::bounded(OutboxLimits::default());
                        let s = hub.subscribe("/race", ids.next(), tx);
                        hub.publish("/race", &Frame::text("x"), None);
                        drop(s);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(hub.topic_count(), 0);
        assert_eq!(hub.subscription_count(), 0);
    }
}
