//! One member's WebSocket: parses what the page sends, answers field and
//! permission errors itself, and hands everything else to the meeting's actor.
//! When the socket ends, for whatever reason, the actor hears it once.

use metrics::counter;
use switchboard_core::registry::Registration;
use switchboard_core::store::meetings::MemberKey;
use switchboard_core::{ConnId, Disconnect, OutboxSender};
use switchboard_edge::socket::{Handler, Inbound};

use super::handle::{Cmd, MeetingHandle, SendError};
use super::wire::{self, Parsed};
use super::{SERVICE, texts};

/// A member's connection to a meeting.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) meeting: MeetingHandle,
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
                meeting = self.meeting.id(),
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
                tracing::debug!(meeting = self.meeting.id(), key_id = self.member.key_id, error = %e, "not JSON; disconnecting");
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
        let cmd = Cmd::Client {
            key_id: self.member.key_id,
            conn: self.conn,
            command,
        };
        match self.meeting.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(SendError::Busy) => {
                counter!("switchboard_meetings_busy_total").increment(1);
                let _ = self.outbox.push(wire::error(texts::BUSY));
                Ok(())
            }
            Err(SendError::Gone) => Err(super::disconnect_for(texts::CLOSED)),
        }
    }

    fn on_close(self, reason: &Disconnect) {
        counter!("switchboard_meetings_connections_closed_total", "reason" => reason.label())
            .increment(1);
        let leave = Cmd::Leave {
            key_id: self.member.key_id,
            conn: self.conn,
        };
        // A leave must not be lost (the member would stay listed): wait for room.
        let meeting = self.meeting.clone();
        tokio::spawn(async move {
            let _ = meeting.send(leave).await;
        });
        tracing::debug!(
            service = SERVICE,
            key_id = self.member.key_id,
            reason = reason.label(),
            "member connection ended"
        );
    }
}
