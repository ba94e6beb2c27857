//! Meetings on several nodes: one owner per meeting, reached over the bus.
//!
//! The node that first needs a meeting claims it ([`Presence`](switchboard_core::Presence) space
//! [`SPACE`], key = the meeting id) for an internal endpoint of its own (a
//! connection id registered with
//! [`Registry::register_internal`](switchboard_core::Registry::register_internal)),
//! subscribes that endpoint to the meeting's owner topic (`meet:o:<id>`) and runs the
//! meeting's actor. Every other node sends its members' joins, commands and
//! leaves there as `ToOwner` messages (JSON) with [`Relay::deliver_to_one`], which
//! says how many received it: none means the owner is gone. A member
//! connected to another node subscribes its own topic (`meet:c:<connection>`) before
//! its join is sent; the owner publishes that member's frames, and ends it
//! (a close on the topic), there. The claim is honoured while the owner's node
//! lives; when it dies, the next node that needs the meeting takes the claim
//! over and its actor re-reads state, running poll and votes from the store.

use std::sync::Arc;

use metrics::counter;
use serde::{Deserialize, Serialize};
use switchboard_core::store::meetings::{KeyId, MeetingId, MemberKey};
use switchboard_core::{ConnId, Disconnect, Frame, OutboxReceiver, Relay};
use tokio_util::sync::CancellationToken;

use super::handle::{Cmd, Join, MeetingHandle, SendError, Sink};
use super::{texts, wire};

/// The [`Presence`](switchboard_core::Presence) space of meeting owners.
pub const SPACE: &str = "meetings";

/// The topic a meeting's owner takes commands on.
pub(crate) fn owner_topic(id: MeetingId) -> String {
    format!("meet:o:{id}")
}

/// The topic of one member connection on a node that does not own its meeting.
pub(crate) fn connection_topic(conn: ConnId) -> Arc<str> {
    Arc::from(format!("meet:c:{conn}"))
}

/// How a connection ends when its meeting's owner is gone or gave the meeting
/// up: dropped without a `disconnect` line, so the page reconnects (1006) and
/// finds the meeting's new owner.
pub(crate) fn owner_gone() -> Disconnect {
    Disconnect::service(4000, "meeting owner gone", "owner_gone")
}

/// What a member's node sends to the meeting's owner (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum ToOwner {
    /// A connection joins; its key is checked, its topic subscribed.
    Join {
        key_id: KeyId,
        member_id: i64,
        name: String,
        admin: bool,
        allow_rejoin: bool,
        proxy_name: Option<String>,
        conn: u64,
        first: i64,
        remote: String,
    },
    /// A connection ended.
    Leave { key_id: KeyId, conn: u64 },
    /// A member's command, already checked by its session.
    Client {
        key_id: KeyId,
        conn: u64,
        command: wire::Command,
    },
}

impl ToOwner {
    /// The join of `member` on connection `conn`.
    pub(crate) fn join(member: &MemberKey, conn: ConnId, first: i64, remote: &str) -> Self {
        ToOwner::Join {
            key_id: member.key_id,
            member_id: member.member_id,
            name: member.name.clone(),
            admin: member.admin,
            allow_rejoin: member.allow_rejoin,
            proxy_name: member.proxy_name.clone(),
            conn: conn.0,
            first,
            remote: remote.to_owned(),
        }
    }

    /// As a frame for the owner's topic.
    pub(crate) fn frame(&self) -> Frame {
        Frame::text(serde_json::to_string(self).unwrap_or_default())
    }

    /// The command for the actor; a member connection elsewhere is a remote sink.
    fn into_cmd(self) -> Cmd {
        match self {
            ToOwner::Join {
                key_id,
                member_id,
                name,
                admin,
                allow_rejoin,
                proxy_name,
                conn,
                first,
                remote,
            } => Cmd::Join(Box::new(Join {
                member: MemberKey {
                    key_id,
                    member_id,
                    name,
                    admin,
                    allow_rejoin,
                    proxy_name,
                },
                conn: ConnId(conn),
                sink: Sink::Remote(connection_topic(ConnId(conn))),
                first,
                remote,
            })),
            ToOwner::Leave { key_id, conn } => Cmd::Leave {
                key_id,
                conn: ConnId(conn),
            },
            ToOwner::Client {
                key_id,
                conn,
                command,
            } => Cmd::Client {
                key_id,
                conn: ConnId(conn),
                command,
            },
        }
    }
}

/// Hands what arrives on the owner's topic to the actor, until the actor stops
/// or the endpoint is closed (then `lost` is cancelled: the actor gives the
/// meeting up, since nobody can reach it any more).
pub(crate) async fn forward(
    mut rx: OutboxReceiver,
    handle: MeetingHandle,
    relay: Relay,
    lost: CancellationToken,
) {
    let mut buf = Vec::new();
    'outer: while rx.recv_many(&mut buf).await.is_ok() {
        for f in buf.drain(..) {
            let msg: ToOwner = match serde_json::from_slice(f.payload()) {
                Ok(m) => m,
                Err(e) => {
                    counter!("switchboard_meetings_remote_malformed_total").increment(1);
                    tracing::warn!(meeting = handle.id(), error = %e, "malformed command from another node");
                    continue;
                }
            };
            let cmd = msg.into_cmd();
            let sent = match cmd {
                // As for a member of this node: a full queue tells the sender.
                Cmd::Client { conn, .. } => match handle.try_send(cmd) {
                    Err(SendError::Busy) => {
                        counter!("switchboard_meetings_busy_total").increment(1);
                        let _ =
                            relay.publish(&connection_topic(conn), wire::error(texts::BUSY), None);
                        Ok(())
                    }
                    r => r,
                },
                // Joins and leaves must not be lost: wait for room.
                cmd => handle.send(cmd).await,
            };
            if sent.is_err() {
                break 'outer;
            }
        }
    }
    lost.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_to_the_owner_round_trip() {
        let member = MemberKey {
            key_id: 7,
            member_id: 3,
            name: "Ada \"the\" Admin".into(),
            admin: true,
            allow_rejoin: false,
            proxy_name: Some("Bob".into()),
        };
        for m in [
            ToOwner::join(&member, ConnId(0x1_0000_0002), 41, "127.0.0.1:5"),
            ToOwner::Leave { key_id: 7, conn: 9 },
            ToOwner::Client {
                key_id: 7,
                conn: 9,
                command: wire::Command::NewPoll {
                    question: "Q?".into(),
                    answers: vec!["yes".into(), "no".into()],
                    minutes: 2,
                },
            },
            ToOwner::Client {
                key_id: 7,
                conn: 9,
                command: wire::Command::Message("hi".into()),
            },
        ] {
            let f = m.frame();
            let back: ToOwner = serde_json::from_slice(f.payload()).expect("decodes");
            assert_eq!(back, m);
        }
        let Cmd::Join(j) = ToOwner::join(&member, ConnId(5), 0, "x").into_cmd() else {
            panic!("a join")
        };
        assert_eq!(j.member, member);
        assert!(matches!(&j.sink, Sink::Remote(t) if &**t == "meet:c:0000000000000005"));
    }
}
