//! One client socket at `/spreed`: the handshake (welcome queued and the
//! connection known to the hub before the 101) and the [`Handler`] that
//! parses each message and hands it to the hub. The handler never waits on
//! the network: it only parses, answers malformed input itself, and queues
//! a command for the hub.

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use metrics::counter;
use switchboard_core::registry::Registration;
use switchboard_core::{ConnId, Disconnect, Frame, Outbox, OutboxSender};
use switchboard_edge::socket::{Handler, Inbound};
use switchboard_edge::text_response;
use switchboard_edge::upgrade::{self, HandshakeError};

use super::errors::ClientError;
use super::hub::{Cmd, HubHandle, error_frame};
use super::{SERVICE, Talk, wire};

impl Talk {
    /// `GET /spreed`.
    pub(super) async fn connect(&self, req: Request) -> Response {
        if !upgrade::is_upgrade_request(req.headers()) {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "upgrade_required")
                .increment(1);
            return text_response(StatusCode::BAD_REQUEST, "Bad Request\n");
        }
        match upgrade::check(&req, &self.socket) {
            Ok(()) => {}
            Err(e @ HandshakeError::ShuttingDown) => return e.response(),
            Err(e) => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "handshake")
                    .increment(1);
                return e.response();
            }
        }
        let (tx, rx) = Outbox::bounded(self.cfg.outbox);
        let conn = self.relay.next_conn_id();
        let welcome = wire::Welcome {
            version: self.cfg.version,
            features: self.cfg.hub.features,
        };
        let _ = tx.push(Frame::Text(wire::frame(None, "welcome", Some(&welcome))));
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        self.hub
            .send(Cmd::Connect {
                conn,
                outbox: tx.clone(),
            })
            .await;
        let handler = Connection {
            conn,
            hub: self.hub.clone(),
            outbox: tx,
            _registration: registration,
        };
        let mut resp = upgrade::accept(req, self.socket.clone(), rx, handler);
        if let Ok(v) = HeaderValue::from_str(&self.features_header()) {
            resp.headers_mut().insert("x-spreed-signaling-features", v);
        }
        resp
    }
}

/// One socket's handler.
#[derive(Debug)]
struct Connection {
    conn: ConnId,
    hub: HubHandle,
    outbox: OutboxSender,
    _registration: Registration,
}

impl Handler for Connection {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        let text = match msg {
            Inbound::Text(t) => t,
            Inbound::Binary(_) => {
                let _ = self.outbox.push(Frame::Text(error_frame(
                    None,
                    &ClientError::InvalidFormat,
                    None,
                )));
                return Ok(());
            }
        };
        match wire::parse(&text) {
            Ok(msg) => {
                self.hub
                    .send(Cmd::Message {
                        conn: self.conn,
                        msg,
                    })
                    .await;
            }
            Err(refusal) => {
                let frame = error_frame(refusal.id.as_deref(), &refusal.error, None);
                let _ = self.outbox.push(Frame::Text(frame));
            }
        }
        Ok(())
    }

    fn on_close(self, _reason: &Disconnect) {
        self.hub.send_soon(Cmd::Disconnected { conn: self.conn });
    }
}
