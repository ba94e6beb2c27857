//! [`MeetingHandle`]: the cheap handle to one meeting's actor, and the
//! commands it accepts.
//!
//! Everything about a meeting goes through its handle: joins, leaves, the
//! members' commands and status queries. The handle is a bounded channel to
//! the actor's task on the meeting's owner node; other nodes reach the same
//! channel through the owner's topic (see [`super::remote`]).

use std::sync::Arc;

use serde::Serialize;
use switchboard_core::store::meetings::{KeyId, MeetingId, MemberKey};
use switchboard_core::{ConnId, OutboxSender};
use tokio::sync::{mpsc, oneshot};

use super::wire;

/// A member's connection asking to join.
#[derive(Debug)]
pub(crate) struct Join {
    /// Who the key says this is.
    pub(crate) member: MemberKey,
    /// The connection.
    pub(crate) conn: ConnId,
    /// Where the connection's frames go.
    pub(crate) sink: Sink,
    /// The highest line id the client already has.
    pub(crate) first: i64,
    /// The peer's address as the status report shows it.
    pub(crate) remote: String,
}

/// Where the frames for one member's connection go.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// A connection on the owner's node: straight into its outbox.
    Local(OutboxSender),
    /// A connection on another node: published on the topic only that
    /// connection subscribes to; a close on the topic ends it there.
    Remote(Arc<str>),
}

/// What a meeting's actor is asked to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A connection joins (the key is already checked).
    Join(Box<Join>),
    /// A connection ended.
    Leave {
        /// Whose.
        key_id: KeyId,
        /// Which connection (a replaced one is ignored).
        conn: ConnId,
    },
    /// A member's command.
    Client {
        /// From whom.
        key_id: KeyId,
        /// From which connection (commands of a replaced connection are ignored).
        conn: ConnId,
        /// What.
        command: wire::Command,
    },
    /// Report who is in the meeting.
    Status(oneshot::Sender<MeetingStatus>),
}

/// One meeting in the `/__meetingstatus` report.
#[derive(Debug, Clone, Serialize)]
pub struct MeetingStatus {
    /// The meeting's id.
    pub id: MeetingId,
    /// `pending`, `open`, `finished` or `closed`.
    pub state: &'static str,
    /// Members connected now (`[]` when none).
    pub members: Vec<MemberStatus>,
    /// Members who were connected and are not now (`null` when none).
    pub disconnectedmembers: Option<Vec<MemberStatus>>,
}

/// One member in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The member's user id.
    pub uid: i64,
    /// Full name.
    pub name: String,
    /// Whether the member administers the meeting.
    pub admin: bool,
    /// The peer address (with `X-Forwarded-For` behind a proxy).
    pub remote: String,
}

/// Why a command did not reach a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The meeting's queue is full (overflow policy: refuse, tell the sender).
    #[error("the meeting is busy")]
    Busy,
    /// The meeting has ended (closed) and takes no more commands.
    #[error("the meeting has ended")]
    Gone,
}

/// A cheap handle to one meeting's actor.
#[derive(Debug, Clone)]
pub struct MeetingHandle {
    pub(crate) id: MeetingId,
    pub(crate) tx: mpsc::Sender<Cmd>,
}

impl MeetingHandle {
    /// The meeting's id.
    pub fn id(&self) -> MeetingId {
        self.id
    }

    /// Sends `cmd` without waiting; a full queue is [`SendError::Busy`].
    pub(crate) fn try_send(&self, cmd: Cmd) -> Result<(), SendError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Busy,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }

    /// Sends `cmd`, waiting for room (for what must not be lost, such as a leave).
    pub(crate) async fn send(&self, cmd: Cmd) -> Result<(), SendError> {
        self.tx.send(cmd).await.map_err(|_| SendError::Gone)
    }

    /// The meeting's status, or `None` if it has ended.
    pub async fn status(&self) -> Option<MeetingStatus> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Whether the actor has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
