//! The texts members see, in one place. The original's are kept verbatim
//! (pgeu-system trims its logs on "This meeting is now open" and "This meeting
//! is now finished"); the ones Switchboard adds say so.

/// Kept verbatim: pgeu-system's log page keys on it.
pub const NOW_OPEN: &str = "This meeting is now open";
/// Kept verbatim: pgeu-system's log page keys on it.
pub const NOW_FINISHED: &str = "This meeting is now finished";
/// Disconnect: no key row for this meeting and key.
pub const NOT_ALLOWED: &str = "You are not allowed to enter this meeting";
/// Disconnect: the key could not be checked (database error).
pub const CONNECTION_ERROR: &str = "Connection error";
/// Disconnect: a non-admin joins a finished meeting.
pub const ALREADY_FINISHED: &str = "This meeting is already finished and can no longer be joined.";
/// Disconnect: a non-admin who may not rejoin joins an open meeting.
pub const IN_PROGRESS: &str = "This meeting is already in progress and can no longer be joined.";
/// Disconnect: the same key connected again elsewhere.
pub const REPLACED: &str =
    "You have connected from a different session. This session is disconnected.";
/// Disconnect: an admin kicked this member.
pub const KICKED: &str = "You have been forcibly disconnected from this meeting";
/// Error: a non-admin sent an admin command.
pub const PERMISSION_DENIED: &str = "Permission denied";
/// Disconnect (new): the meeting was closed (in the database) while connected or joining.
pub const CLOSED: &str = "This meeting is closed.";
/// Error (new): a chat line could not be stored, so nobody saw it.
pub const NOT_STORED: &str = "Your message could not be stored and was not sent. Please try again.";
/// Error (new): the history could not be read on join.
pub const NO_HISTORY: &str = "The meeting history could not be loaded. Reconnect to try again.";
/// Error (new): a new poll could not be stored, so it was not started.
pub const POLL_NOT_STORED: &str = "The poll could not be stored and was not started.";
/// Error (new): a vote could not be stored, so it was not counted.
pub const VOTE_NOT_STORED: &str =
    "Your vote could not be stored and was not counted. Please vote again.";
/// Error (new): the meeting's queue is full; the command was dropped.
pub const BUSY: &str =
    "The meeting is busy; your last action was not carried out. Please try again.";
