//! One member's WebSocket: parses what the page sends, answers field and
//! permission errors itself, and hands everything else to the meeting's actor,
//! on this node or, over the bus, on the node that owns the meeting. When the
//! socket ends, for whatever reason, the actor hears it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::counter;
use switchboard_core::registry::Registration;
use switchboard_core::store::meetings::{MeetingId, MemberKey};
use switchboard_core::{ConnId, Disconnect, NodeId, OutboxSender, Relay, Subscription};
use switchboard_edge::socket::{Handler, Inbound};

use super::handle::{Cmd, MeetingHandle, SendError};
use super::remote::{ToOwner, owner_gone, owner_topic};
use super::wire::{self, Parsed};
use super::{SERVICE, texts};

/// This node's member connections whose meeting another node owns, with that
/// node, so they can be dropped when it dies (their pages reconnect and find
/// the meeting's new owner).
#[derive(Debug, Clone, Default)]
pub(crate) struct Watched(pub(crate) Arc<Mutex<HashMap<ConnId, (NodeId, OutboxSender)>>>);

impl Watched {
    /// Watches `conn` (owner on `node`) until the guard drops.
    pub(crate) fn watch(&self, conn: ConnId, node: NodeId, outbox: OutboxSender) -> WatchGuard {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn, (node, outbox));
        WatchGuard {
            watched: self.clone(),
            conn,
        }
    }
}

/// Keeps a connection watched; dropping it stops.
#[derive(Debug)]
pub(crate) struct WatchGuard {
    watched: Watched,
    conn: ConnId,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.watched
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.conn);
    }
}

/// How a session reaches its meeting's actor.
#[derive(Debug)]
pub(crate) enum OwnerLink {
    /// The actor runs on this node.
    Local(MeetingHandle),
    /// The actor runs on another node.
    Remote(RemoteLink),
}

/// A session's link to a meeting owned by another node.
#[derive(Debug)]
pub(crate) struct RemoteLink {
    pub(crate) meeting: MeetingId,
    pub(crate) relay: Relay,
    /// The connection's own topic, where the owner sends its frames.
    pub(crate) _topic: Subscription,
    pub(crate) _watch: WatchGuard,
}

/// A member's connection to a meeting.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) meeting: MeetingId,
    pub(crate) owner: OwnerLink,
    pub(crate) member: MemberKey,
    pub(crate) conn: ConnId,
    pub(crate) outbox: OutboxSender,
    pub(crate) _registration: Registration,
}

fn ignored(why: &'static str) {
    counter!("switchboard_meetings_ignored_total", "reason" => why).increment(1);
}

impl Handler for Session {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        let (Inbound::Text(bytes) | Inbound::Binary(bytes)) = msg;
        if !self.member.admin
            && let Some(kind) = wire::admin_command_type(&bytes)
        {
            tracing::info!(
                meeting = self.meeting,
                key_id = self.member.key_id,
                command = kind,
                "admin command from a non-admin refused"
            );
            counter!("switchboard_meetings_refused_total", "reason" => "permission").increment(1);
            let _ = self.outbox.push(wire::error(texts::PERMISSION_DENIED));
            return Ok(());
        }
        let command = match wire::parse(&bytes) {
            Err(e) => {
                // As the original: a message that is not JSON ends the connection.
                tracing::debug!(meeting = self.meeting, key_id = self.member.key_id, error = %e, "not JSON; disconnecting");
                counter!("switchboard_meetings_refused_total", "reason" => "not_json").increment(1);
                return Err(Disconnect::service(4002, "not JSON", "not_json"));
            }
            Ok(Parsed::Ignored(why)) => {
                ignored(why);
                return Ok(());
            }
            Ok(Parsed::Refused(text)) => {
                let _ = self.outbox.push(wire::error(text));
                return Ok(());
            }
            Ok(Parsed::Command(c)) => c,
        };
        match &self.owner {
            OwnerLink::Local(meeting) => {
                let cmd = Cmd::Client {
                    key_id: self.member.key_id,
                    conn: self.conn,
                    command,
                };
                match meeting.try_send(cmd) {
                    Ok(()) => Ok(()),
                    Err(SendError::Busy) => {
                        counter!("switchboard_meetings_busy_total").increment(1);
                        let _ = self.outbox.push(wire::error(texts::BUSY));
                        Ok(())
                    }
                    Err(SendError::Gone) => Err(super::disconnect_for(texts::CLOSED)),
                }
            }
            OwnerLink::Remote(link) => {
                let msg = ToOwner::Client {
                    key_id: self.member.key_id,
                    conn: self.conn.0,
                    command,
                };
                // Acknowledged, one at a time: the owner gets this connection's
                // commands in order, and nobody taking it means the owner is gone.
                match link
                    .relay
                    .deliver_to_one(&owner_topic(link.meeting), msg.frame())
                    .await
                {
                    Ok(n) if n > 0 => Ok(()),
                    Ok(_) => {
                        tracing::info!(
                            meeting = self.meeting,
                            "the meeting's owner is gone; dropping the member"
                        );
                        Err(owner_gone())
                    }
                    Err(e) => {
                        tracing::warn!(meeting = self.meeting, error = %e, "cannot reach the meeting's owner; dropping the member");
                        Err(owner_gone())
                    }
                }
            }
        }
    }

    fn on_close(self, reason: &Disconnect) {
        counter!("switchboard_meetings_connections_closed_total", "reason" => reason.label())
            .increment(1);
        let (key_id, conn) = (self.member.key_id, self.conn);
        // A leave must not be lost (the member would stay listed): wait for room.
        match self.owner {
            OwnerLink::Local(meeting) => {
                tokio::spawn(async move {
                    let _ = meeting.send(Cmd::Leave { key_id, conn }).await;
                });
            }
            OwnerLink::Remote(link) => {
                let msg = ToOwner::Leave {
                    key_id,
                    conn: conn.0,
                };
                tokio::spawn(async move {
                    // Nobody taking it: the owner is gone, and the member with it.
                    let _ = link
                        .relay
                        .deliver_to_one(&owner_topic(link.meeting), msg.frame())
                        .await;
                });
            }
        }
        tracing::debug!(
            service = SERVICE,
            key_id,
            reason = reason.label(),
            "member connection ended"
        );
    }
}
