//! The channel book: which pairing channels exist, who is in each, and how much
//! each has exchanged — the only state pairing connections share.
//!
//! [`ChannelBook`] is the seam; [`MemoryBook`] is the one-node implementation
//! (a sharded map under `std` mutexes, each critical section a few field updates).
//! Delivery does not go through the book: members subscribe to the channel's
//! topic on the [`Relay`](switchboard_core::Relay), so the book only decides
//! *whether* a join or a message is allowed.
//!
//! Several nodes behind one load balancer need a shared book: a
//! `Store`/NATS-KV implementation keeping the same record per channel (member
//! connection ids and addresses, counters, creation time) with compare-and-swap
//! updates, and delivering a channel-wide end over the bus to the node that owns
//! each member. Nothing outside this module assumes the book is in memory.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use switchboard_core::{ConnId, Disconnect, OutboxSender};

use super::channel_id::ChannelId;
use super::close;

/// One member of a channel, as the book records it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member's connection.
    pub conn: ConnId,
    /// The member's client address, when it could be established.
    pub remote: Option<IpAddr>,
    /// Where a channel-wide end is delivered (the socket writer sends the Close frame).
    pub outbox: OutboxSender,
}

/// The limits a channel is held to. Zero means "no limit" for the counters and
/// the lifespan, as in the original channelserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Most members at once (the creator included).
    pub max_channel_connections: usize,
    /// Most messages the channel relays; message `max + 1` ends the channel. 0: unlimited.
    pub max_exchanges: u64,
    /// Envelope bytes after which the channel ends (see [`ChannelBook::record_message`]). 0: unlimited.
    pub max_data: u64,
    /// How long a channel lives after its creation. `Duration::ZERO`: forever.
    pub lifespan: Duration,
}

impl Default for ChannelLimits {
    /// The original channelserver's defaults: 3 members, 10 messages, no data cap, 300 s.
    fn default() -> Self {
        ChannelLimits {
            max_channel_connections: 3,
            max_exchanges: 10,
            max_data: 0,
            lifespan: Duration::from_secs(300),
        }
    }
}

impl ChannelLimits {
    /// When a channel created at `created` expires, if it ever does.
    pub fn deadline(&self, created: Instant) -> Option<Instant> {
        (!self.lifespan.is_zero()).then(|| created + self.lifespan)
    }
}

/// A new channel could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The id is taken (a 2^-128 event with random ids; the caller draws another).
    #[error("channel id already in use")]
    Exists,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No channel with this id.
    #[error("unknown channel")]
    Unknown,
    /// The channel is past its lifespan.
    #[error("channel lifespan expired")]
    Expired,
    /// The channel has `max_channel_connections` members.
    #[error("channel full")]
    Full,
    /// The channel has two or more members and none shares the joiner's address.
    #[error("joiner's address matches no member")]
    ForeignAddress,
}

impl JoinError {
    /// The close the refused joiner gets.
    pub fn disconnect(self) -> Disconnect {
        match self {
            JoinError::Unknown => close::UNKNOWN_CHANNEL,
            JoinError::Expired => close::LIFESPAN,
            JoinError::Full => close::CHANNEL_FULL,
            JoinError::ForeignAddress => close::FOREIGN_ADDRESS,
        }
    }
}

/// A channel-wide limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_exchanges`.
    Exchanges,
    /// `max_data`.
    Data,
    /// `conn_lifespan`.
    Lifespan,
}

impl Limit {
    /// The close every member gets when the channel ends on this limit.
    pub fn disconnect(self) -> Disconnect {
        match self {
            Limit::Exchanges => close::MAX_EXCHANGES,
            Limit::Data => close::MAX_DATA,
            Limit::Lifespan => close::LIFESPAN,
        }
    }
}

/// Why a message may not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The channel no longer exists (it ended while the message was on its way).
    #[error("channel gone")]
    Gone,
    /// The message breaks `limit`: the channel is removed and these were its members.
    #[error("channel limit reached: {limit:?}")]
    Breach {
        /// The limit reached.
        limit: Limit,
        /// Every member at that moment, the sender included; the caller closes them.
        members: Vec<Member>,
    },
}

/// The pairing channels of a deployment. See the module docs.
///
/// Contract:
/// - **Atomicity.** Each method is one atomic step on one channel: a join's
///   checks and insertion, a message's limit checks and counter updates, and a
///   removal cannot interleave with another step on the same channel.
/// - **Lifecycle.** A channel exists from [`ChannelBook::create`] until its last
///   member leaves or it is ended ([`ChannelBook::end`], or a limit breach in
///   [`ChannelBook::record_message`]). An ended channel is never revived; ids are not reused.
/// - **Join rules**, in order: unknown id, past its lifespan, full
///   (`members >= max_channel_connections`), then the address rule: once a channel
///   has two members, a joiner must have a known address equal to a member's.
/// - **Counting.** Every message counts, whoever is present to receive it.
///   `max_exchanges`: message number `max + 1` is a breach. `max_data` (the
///   original's rule): a breach when the bytes counted *before* this message
///   already exceed the cap, or this envelope alone does; otherwise it is added.
///   Lifespan: a message at or after the deadline is a breach.
/// - **Never waits**: no method awaits or blocks on I/O.
pub trait ChannelBook: Send + Sync + fmt::Debug + 'static {
    /// Records a new channel whose first member is `first`, created at `now`.
    fn create(&self, id: ChannelId, first: Member, now: Instant) -> Result<(), CreateError>;

    /// Adds `member` to channel `id` under `limits`; returns the channel's creation time.
    fn join(
        &self,
        id: ChannelId,
        member: Member,
        limits: &ChannelLimits,
        now: Instant,
    ) -> Result<Instant, JoinError>;

    /// Counts one message of `envelope_bytes` against channel `id`.
    ///
    /// `Ok` means relay it. A breach removes the channel and hands back its members.
    fn record_message(
        &self,
        id: ChannelId,
        envelope_bytes: u64,
        limits: &ChannelLimits,
        now: Instant,
    ) -> Result<(), MessageError>;

    /// Removes member `conn` from channel `id` (the last one out deletes the
    /// channel). Returns the members left, or `None` if `conn` was not a member.
    fn leave(&self, id: ChannelId, conn: ConnId) -> Option<usize>;

    /// Removes channel `id` and returns its members (empty if it did not exist).
    fn end(&self, id: ChannelId) -> Vec<Member>;

    /// Number of channels.
    fn channel_count(&self) -> usize;

    /// Number of members of channel `id` (0 if it does not exist).
    fn member_count(&self, id: ChannelId) -> usize;
}

#[derive(Debug)]
struct Channel {
    created: Instant,
    members: Vec<Member>,
    messages: u64,
    data: u64,
}

type Shard = HashMap<ChannelId, Channel>;

/// The in-memory [`ChannelBook`] of one node: channels sharded by id under `std` mutexes.
pub struct MemoryBook {
    shards: Box<[Mutex<Shard>]>,
    channels: AtomicUsize,
}

impl fmt::Debug for MemoryBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBook")
            .field("shards", &self.shards.len())
            .field("channels", &self.channels)
            .finish()
    }
}

impl Default for MemoryBook {
    fn default() -> Self {
        MemoryBook::new(64)
    }
}

impl MemoryBook {
    /// A book with `shards` shards (at least one).
    pub fn new(shards: usize) -> Self {
        MemoryBook {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            channels: AtomicUsize::new(0),
        }
    }

    fn shard(&self, id: ChannelId) -> MutexGuard<'_, Shard> {
        // Ids are uniformly random, so their first bytes spread evenly.
        let b = id.as_bytes();
        let n = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let i = (n % self.shards.len() as u64) as usize;
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, shard: &mut Shard, id: ChannelId) -> Option<Channel> {
        let removed = shard.remove(&id);
        if removed.is_some() {
            self.channels.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}

impl ChannelBook for MemoryBook {
    fn create(&self, id: ChannelId, first: Member, now: Instant) -> Result<(), CreateError> {
        let mut shard = self.shard(id);
        if shard.contains_key(&id) {
            return Err(CreateError::Exists);
        }
        shard.insert(
            id,
            Channel {
                created: now,
                members: vec![first],
                messages: 0,
                data: 0,
            },
        );
        self.channels.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn join(
        &self,
        id: ChannelId,
        member: Member,
        limits: &ChannelLimits,
        now: Instant,
    ) -> Result<Instant, JoinError> {
        let mut shard = self.shard(id);
        let channel = shard.get_mut(&id).ok_or(JoinError::Unknown)?;
        if limits.deadline(channel.created).is_some_and(|d| now >= d) {
            return Err(JoinError::Expired);
        }
        if channel.members.len() >= limits.max_channel_connections {
            return Err(JoinError::Full);
        }
        // The README's rule: after the second connection, joiners must share an
        // address with a member (the original's code applied it one join later).
        if channel.members.len() >= 2 {
            let known = member.remote.is_some_and(|ip| {
                channel
                    .members
                    .iter()
                    .any(|m| m.remote.is_some_and(|r| r == ip))
            });
            if !known {
                return Err(JoinError::ForeignAddress);
            }
        }
        channel.members.push(member);
        Ok(channel.created)
    }

    fn record_message(
        &self,
        id: ChannelId,
        envelope_bytes: u64,
        limits: &ChannelLimits,
        now: Instant,
    ) -> Result<(), MessageError> {
        let mut shard = self.shard(id);
        let channel = shard.get_mut(&id).ok_or(MessageError::Gone)?;
        let breach = if limits.deadline(channel.created).is_some_and(|d| now >= d) {
            Some(Limit::Lifespan)
        } else if limits.max_exchanges > 0 && channel.messages >= limits.max_exchanges {
            Some(Limit::Exchanges)
        } else if limits.max_data > 0
            && (channel.data > limits.max_data || envelope_bytes > limits.max_data)
        {
            Some(Limit::Data)
        } else {
            None
        };
        match breach {
            None => {
                channel.messages += 1;
                channel.data = channel.data.saturating_add(envelope_bytes);
                Ok(())
            }
            Some(limit) => {
                let members = self
                    .remove(&mut shard, id)
                    .map(|c| c.members)
                    .unwrap_or_default();
                Err(MessageError::Breach { limit, members })
            }
        }
    }

    fn leave(&self, id: ChannelId, conn: ConnId) -> Option<usize> {
        let mut shard = self.shard(id);
        let channel = shard.get_mut(&id)?;
        let at = channel.members.iter().position(|m| m.conn == conn)?;
        channel.members.remove(at);
        let left = channel.members.len();
        if left == 0 {
            self.remove(&mut shard, id);
        }
        Some(left)
    }

    fn end(&self, id: ChannelId) -> Vec<Member> {
        let mut shard = self.shard(id);
        self.remove(&mut shard, id)
            .map(|c| c.members)
            .unwrap_or_default()
    }

    fn channel_count(&self) -> usize {
        self.channels.load(Ordering::Relaxed)
    }

    fn member_count(&self, id: ChannelId) -> usize {
        self.shard(id).get(&id).map_or(0, |c| c.members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchboard_core::id::{ConnIds, NodeId};
    use switchboard_core::{Outbox, OutboxLimits};

    struct Fixture {
        ids: ConnIds,
        book: MemoryBook,
        now: Instant,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                ids: ConnIds::new(NodeId(1)),
                book: MemoryBook::new(4),
                now: Instant::now(),
            }
        }

        fn member(&self, remote: Option<&str>) -> Member {
            let (outbox, _rx) = Outbox::bounded(OutboxLimits::default());
            Member {
                conn: self.ids.next(),
                remote: remote.map(|r| r.parse().expect("test ip")),
                outbox,
            }
        }

        fn channel(&self, remote: Option<&str>) -> (ChannelId, Member) {
            let id = ChannelId::random();
            let m = self.member(remote);
            self.book.create(id, m.clone(), self.now).expect("create");
            (id, m)
        }
    }

    fn limits(f: impl FnOnce(&mut ChannelLimits)) -> ChannelLimits {
        let mut l = ChannelLimits::default();
        f(&mut l);
        l
    }

    #[test]
    fn create_join_leave_and_the_last_one_out_deletes() {
        let fx = Fixture::new();
        let (id, a) = fx.channel(Some("127.0.0.1"));
        assert_eq!(
            fx.book.create(id, fx.member(None), fx.now),
            Err(CreateError::Exists)
        );
        let b = fx.member(Some("127.0.0.1"));
        let l = ChannelLimits::default();
        assert_eq!(fx.book.join(id, b.clone(), &l, fx.now), Ok(fx.now));
        assert_eq!((fx.book.channel_count(), fx.book.member_count(id)), (1, 2));
        assert_eq!(fx.book.leave(id, a.conn), Some(1));
        assert_eq!(fx.book.leave(id, a.conn), None, "not a member any more");
        assert_eq!(fx.book.leave(id, b.conn), Some(0));
        assert_eq!(fx.book.channel_count(), 0);
        assert_eq!(
            fx.book.join(id, fx.member(None), &l, fx.now),
            Err(JoinError::Unknown)
        );
    }

    #[test]
    fn join_rules_in_order() {
        let fx = Fixture::new();
        let l = limits(|l| l.max_channel_connections = 4);
        let (id, _a) = fx.channel(Some("81.2.69.142"));
        // The second connection may come from anywhere, or from nowhere known.
        assert!(fx.book.join(id, fx.member(None), &l, fx.now).is_ok());
        // From the third on, the address must match a member's.
        for stranger in [None, Some("216.160.83.56")] {
            assert_eq!(
                fx.book.join(id, fx.member(stranger), &l, fx.now),
                Err(JoinError::ForeignAddress),
                "{stranger:?}"
            );
        }
        assert!(
            fx.book
                .join(id, fx.member(Some("81.2.69.142")), &l, fx.now)
                .is_ok()
        );
        assert!(
            fx.book
                .join(id, fx.member(Some("81.2.69.142")), &l, fx.now)
                .is_ok()
        );
        // Full comes before the address rule.
        assert_eq!(
            fx.book.join(id, fx.member(Some("1.1.1.1")), &l, fx.now),
            Err(JoinError::Full)
        );
        // Expired comes before full.
        let late = fx.now + l.lifespan;
        assert_eq!(
            fx.book.join(id, fx.member(Some("81.2.69.142")), &l, late),
            Err(JoinError::Expired)
        );
        let forever = limits(|l| {
            l.lifespan = Duration::ZERO;
            l.max_channel_connections = 9;
        });
        let much_later = fx.now + Duration::from_secs(86_400);
        assert!(
            fx.book
                .join(id, fx.member(Some("81.2.69.142")), &forever, much_later)
                .is_ok()
        );
    }

    #[test]
    fn default_limits_admit_three_then_refuse() {
        let fx = Fixture::new();
        let l = ChannelLimits::default();
        let (id, _a) = fx.channel(Some("127.0.0.1"));
        for _ in 0..2 {
            assert!(
                fx.book
                    .join(id, fx.member(Some("127.0.0.1")), &l, fx.now)
                    .is_ok()
            );
        }
        assert_eq!(
            fx.book.join(id, fx.member(Some("127.0.0.1")), &l, fx.now),
            Err(JoinError::Full)
        );
    }

    #[test]
    fn message_past_max_exchanges_ends_the_channel_with_every_member() {
        let fx = Fixture::new();
        let l = ChannelLimits::default();
        let (id, a) = fx.channel(None);
        let b = fx.member(None);
        fx.book.join(id, b.clone(), &l, fx.now).expect("join");
        for _ in 0..10 {
            fx.book
                .record_message(id, 10, &l, fx.now)
                .expect("within the limit");
        }
        match fx.book.record_message(id, 10, &l, fx.now) {
            Err(MessageError::Breach { limit, members }) => {
                assert_eq!(limit, Limit::Exchanges);
                let conns: Vec<_> = members.iter().map(|m| m.conn).collect();
                assert_eq!(conns, [a.conn, b.conn]);
            }
            other => panic!("expected a breach, got {other:?}"),
        }
        assert_eq!(fx.book.channel_count(), 0);
        assert!(matches!(
            fx.book.record_message(id, 10, &l, fx.now),
            Err(MessageError::Gone)
        ));
        assert_eq!(fx.book.leave(id, a.conn), None);
    }

    #[test]
    fn zero_means_unlimited() {
        let fx = Fixture::new();
        let l = limits(|l| {
            l.max_exchanges = 0;
            l.max_data = 0;
            l.lifespan = Duration::ZERO;
        });
        let (id, _a) = fx.channel(None);
        for _ in 0..1000 {
            fx.book
                .record_message(id, 1 << 20, &l, fx.now + Duration::from_secs(1 << 20))
                .expect("unlimited");
        }
    }

    #[test]
    fn max_data_follows_the_originals_rule() {
        // The spec's observation with max_data = 200: envelopes of 131 and 141 bytes
        // pass (the second one overshoots), the next one ends the channel.
        let fx = Fixture::new();
        let l = limits(|l| l.max_data = 200);
        let (id, _) = fx.channel(None);
        fx.book.record_message(id, 131, &l, fx.now).expect("131");
        fx.book.record_message(id, 141, &l, fx.now).expect("141");
        assert!(matches!(
            fx.book.record_message(id, 1, &l, fx.now),
            Err(MessageError::Breach {
                limit: Limit::Data,
                ..
            })
        ));
        // One envelope over the cap ends a fresh channel at once.
        let (id, _) = fx.channel(None);
        assert!(matches!(
            fx.book.record_message(id, 231, &l, fx.now),
            Err(MessageError::Breach {
                limit: Limit::Data,
                ..
            })
        ));
        // Exactly the cap is fine.
        let (id, _) = fx.channel(None);
        fx.book.record_message(id, 200, &l, fx.now).expect("200");
        fx.book
            .record_message(id, 200, &l, fx.now)
            .expect("200 again");
    }

    #[test]
    fn a_message_at_the_deadline_is_a_lifespan_breach() {
        let fx = Fixture::new();
        let l = limits(|l| l.lifespan = Duration::from_secs(5));
        let (id, _) = fx.channel(None);
        let just_before = fx.now + Duration::from_millis(4999);
        fx.book
            .record_message(id, 1, &l, just_before)
            .expect("alive");
        assert!(matches!(
            fx.book
                .record_message(id, 1, &l, fx.now + Duration::from_secs(5)),
            Err(MessageError::Breach {
                limit: Limit::Lifespan,
                ..
            })
        ));
        assert_eq!(l.deadline(fx.now), Some(fx.now + Duration::from_secs(5)));
    }

    #[test]
    fn end_returns_members_once() {
        let fx = Fixture::new();
        let (id, a) = fx.channel(None);
        let ended = fx.book.end(id);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].conn, a.conn);
        assert!(fx.book.end(id).is_empty());
        assert_eq!(fx.book.channel_count(), 0);
    }

    #[test]
    fn limit_breaches_map_to_distinct_closes() {
        assert_eq!(Limit::Exchanges.disconnect().code(), 4429);
        assert_eq!(Limit::Data.disconnect().code(), 4413);
        assert_eq!(Limit::Lifespan.disconnect().code(), 4408);
        assert_eq!(JoinError::Unknown.disconnect().code(), 4404);
        assert_eq!(JoinError::Full.disconnect().code(), 4409);
        assert_eq!(JoinError::ForeignAddress.disconnect().code(), 4403);
        assert_eq!(JoinError::Expired.disconnect().code(), 4408);
    }

    #[test]
    fn concurrent_messages_never_exceed_the_limit() {
        let book = Arc::new(MemoryBook::new(2));
        let ids = ConnIds::new(NodeId(1));
        let now = Instant::now();
        let l = limits(|l| l.max_exchanges = 1000);
        let id = ChannelId::random();
        let (outbox, _rx) = Outbox::bounded(OutboxLimits::default());
        book.create(
            id,
            Member {
                conn: ids.next(),
                remote: None,
                outbox,
            },
            now,
        )
        .expect("create");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let book = book.clone();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    let mut breaches = 0u64;
                    for _ in 0..400 {
                        match book.record_message(id, 1, &l, now) {
                            Ok(()) => ok += 1,
                            Err(MessageError::Breach { .. }) => breaches += 1,
                            Err(MessageError::Gone) => {}
                        }
                    }
                    (ok, breaches)
                })
            })
            .collect();
        let (ok, breaches) = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        assert_eq!((ok, breaches), (1000, 1));
        assert_eq!(book.channel_count(), 0);
    }
}
