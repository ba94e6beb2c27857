//! The meetings archive seam: meetings, their members' keys, the permanent
//! message log, and the polls, as the meetings service keeps them.
//!
//! Two traits: [`MeetingStore`], what a running meeting needs, and
//! [`MeetingAdmin`], what an operator needs to set meetings up (native mode;
//! on pgeu-system's database its Django application does that). The rules of
//! the parent module hold for every method: `Ok` means committed and visible
//! to every handle on the database, and `Unavailable` on a write means the
//! outcome is unknown.

use super::StoreFuture;

/// A meeting's id (`membership_meeting.id`).
pub type MeetingId = i64;
/// A member's id (`membership_member.user_id`), the sender of a log line.
pub type MemberId = i64;
/// A member's key id for one meeting (`membership_membermeetingkey.id`): the
/// user id on the wire.
pub type KeyId = i64;

/// The state of a meeting, as stored (`membership_meeting.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeetingState {
    /// 0: not opened yet; every member with a key may join.
    Pending,
    /// 1: in progress; members who were in before (or admins) may join.
    Open,
    /// 2: finished; only admins may join.
    Finished,
    /// 3: closed for good; nobody may join.
    Closed,
}

impl MeetingState {
    /// The stored number.
    pub fn as_i64(self) -> i64 {
        match self {
            MeetingState::Pending => 0,
            MeetingState::Open => 1,
            MeetingState::Finished => 2,
            MeetingState::Closed => 3,
        }
    }

    /// The state a stored number means; `None` for anything else.
    pub fn from_i64(n: i64) -> Option<Self> {
        Some(match n {
            0 => MeetingState::Pending,
            1 => MeetingState::Open,
            2 => MeetingState::Finished,
            3 => MeetingState::Closed,
            _ => return None,
        })
    }

    /// The name the status report uses: `pending`, `open`, `finished`, `closed`.
    pub fn name(self) -> &'static str {
        match self {
            MeetingState::Pending => "pending",
            MeetingState::Open => "open",
            MeetingState::Finished => "finished",
            MeetingState::Closed => "closed",
        }
    }
}

/// Who holds a key to a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKey {
    /// The key's id: the member's id on the wire.
    pub key_id: KeyId,
    /// The member (the sender recorded in the log).
    pub member_id: MemberId,
    /// The member's full name.
    pub name: String,
    /// Whether the member administers this meeting.
    pub admin: bool,
    /// Whether the member may join while the meeting is open.
    pub allow_rejoin: bool,
    /// The proxy who attends for the member, if any.
    pub proxy_name: Option<String>,
}

/// A line to append to a meeting's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    /// The member who said it; `None` for a system line.
    pub sender: Option<MemberId>,
    /// The text.
    pub text: String,
}

/// What the store assigned to an appended line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// The line's id: increasing within a meeting, never reused.
    pub id: i64,
    /// The time it was stored, `HH:MM:SS`.
    pub time: String,
    /// The date it was stored, `YYYY-MM-DD`.
    pub date: String,
}

/// A line read back from a meeting's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its id, time and date.
    pub stored: StoredLine,
    /// The member who said it; `None` for a system line.
    pub sender: Option<MemberId>,
    /// The sender's key id for this meeting, if the sender has one.
    pub sender_key: Option<KeyId>,
    /// The sender's full name; empty for a system line.
    pub sender_name: String,
    /// The text.
    pub text: String,
}

/// A stored poll that has not ended, with its votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    /// The poll's id.
    pub id: i64,
    /// The question.
    pub question: String,
    /// The answers, at most [`MAX_POLL_ANSWERS`].
    pub answers: Vec<String>,
    /// When it closes, in milliseconds since the Unix epoch.
    pub closes_at_ms: i64,
    /// Every vote: (voter's key id, index of the answer), by key id.
    pub votes: Vec<(KeyId, usize)>,
}

/// The most answers a poll can have.
pub const MAX_POLL_ANSWERS: usize = 5;

/// How a poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEnd {
    /// Its time ran out, or everyone voted: the results were announced.
    Completed,
    /// An admin aborted it: no results.
    Aborted,
}

/// What a running meeting reads and writes.
///
/// Ordering: [`append_lines`](Self::append_lines) assigns ids in the order of
/// its slice, and ids of one meeting only increase, commit after commit, so a
/// reader that saw id N and asks for [`lines_after`](Self::lines_after)`(N)`
/// misses nothing committed later. That holds while one writer appends to a
/// meeting at a time, which the store enforces with a fencing token: a writer
/// first takes the meeting with [`take_writer`](Self::take_writer), and every
/// append carries the epoch it got; once another writer has taken the meeting,
/// the older epoch's appends fail with [`StoreError::Fenced`](super::StoreError::Fenced)
/// and store nothing. A cut-off owner therefore cannot interleave its lines
/// with the new owner's.
pub trait MeetingStore: Send + Sync + std::fmt::Debug + 'static {
    /// The meeting's state; `None` if there is no such meeting (or it holds a
    /// state number this build does not know).
    fn meeting_state(&self, meeting: MeetingId) -> StoreFuture<'_, Option<MeetingState>>;

    /// Sets the meeting's state. Returns whether it changed (`false` when it
    /// already had that state or there is no such meeting).
    fn set_meeting_state(&self, meeting: MeetingId, state: MeetingState) -> StoreFuture<'_, bool>;

    /// The holder of `key` for the meeting, or `None`. The key compares exactly.
    fn member_by_key<'a>(
        &'a self,
        meeting: MeetingId,
        key: &'a str,
    ) -> StoreFuture<'a, Option<MemberKey>>;

    /// Sets whether the holder of key `key_id` may rejoin an open meeting.
    fn set_allow_rejoin(
        &self,
        meeting: MeetingId,
        key_id: KeyId,
        allow: bool,
    ) -> StoreFuture<'_, ()>;

    /// Makes the caller the meeting's only writer: stores and returns a
    /// writer epoch higher than any before it for this meeting (1 the first
    /// time). Appends made with an older epoch fail from then on.
    fn take_writer(&self, meeting: MeetingId) -> StoreFuture<'_, i64>;

    /// Appends `lines` to the meeting's log, stamped with the store's clock,
    /// as the writer of epoch `writer` (from [`take_writer`](Self::take_writer)).
    ///
    /// Atomic: every line is stored, or none is (one transaction, so lines
    /// appended together cost one commit). The result has one entry per line,
    /// in order, with increasing ids. Fails with
    /// [`StoreError::Fenced`](super::StoreError::Fenced), storing nothing, when
    /// `writer` is not the meeting's current epoch. An empty `lines` is `Ok`
    /// without a check.
    fn append_lines<'a>(
        &'a self,
        meeting: MeetingId,
        writer: i64,
        lines: &'a [NewLine],
    ) -> StoreFuture<'a, Vec<StoredLine>>;

    /// Every line of the meeting with an id above `after`, by id.
    fn lines_after(&self, meeting: MeetingId, after: i64) -> StoreFuture<'_, Vec<LogLine>>;

    /// Stores a new poll. Fails with [`StoreError::Backend`](super::StoreError::Backend)
    /// if the meeting already has one that has not ended.
    fn open_poll<'a>(
        &'a self,
        meeting: MeetingId,
        question: &'a str,
        answers: &'a [String],
        closes_at_ms: i64,
    ) -> StoreFuture<'a, i64>;

    /// Records (or changes) the vote of key `key_id` in poll `poll`.
    fn record_vote(&self, poll: i64, key_id: KeyId, answer: usize) -> StoreFuture<'_, ()>;

    /// Ends poll `poll`. Returns whether it was still running.
    fn end_poll(&self, poll: i64, how: PollEnd) -> StoreFuture<'_, bool>;

    /// The meeting's poll that has not ended, with its votes, if any.
    fn active_poll(&self, meeting: MeetingId) -> StoreFuture<'_, Option<PollRecord>>;
}

/// Setting meetings up: what an operator does before a meeting (native mode).
pub trait MeetingAdmin: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a pending meeting named `name`.
    fn create_meeting<'a>(&'a self, name: &'a str) -> StoreFuture<'a, MeetingId>;

    /// Creates a member named `full_name`.
    fn create_member<'a>(&'a self, full_name: &'a str) -> StoreFuture<'a, MemberId>;

    /// Gives `member` the key `key` to `meeting` (replacing the member's
    /// previous key to it, which then stops working), attending through
    /// `proxy_name` if given. Returns the key's id, kept across replacements.
    fn issue_key<'a>(
        &'a self,
        meeting: MeetingId,
        member: MemberId,
        key: &'a str,
        proxy_name: Option<&'a str>,
    ) -> StoreFuture<'a, KeyId>;

    /// Makes `member` an administrator of `meeting` (idempotent).
    fn add_admin(&self, meeting: MeetingId, member: MemberId) -> StoreFuture<'_, ()>;
}
