//! The echo service: a test-only WebSocket endpoint that sends every message
//! back unchanged (same opcode). It exists so the RFC 6455 conformance suite
//! (Autobahn, via kosoku) can exercise the edge; it is off unless enabled.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;

use switchboard_core::{Disconnect, Frame, Outbox, OutboxLimits, OutboxSender, Relay};
use switchboard_edge::socket::{Handler, Inbound, SocketConfig};
use switchboard_edge::{text_response, upgrade};

/// The service name.
pub const SERVICE: &str = "echo";

/// Shared state of the echo service.
#[derive(Debug)]
pub struct Echo {
    relay: Relay,
    socket: SocketConfig,
}

impl Echo {
    /// Builds the service; messages up to 16 MiB.
    pub fn new(relay: Relay, mut socket: SocketConfig) -> Arc<Self> {
        socket.service = SERVICE;
        socket.max_message = 16 << 20;
        Arc::new(Echo { relay, socket })
    }

    /// The axum handler.
    pub async fn handle(State(svc): State<Arc<Echo>>, req: Request) -> Response {
        if !upgrade::is_upgrade_request(req.headers()) {
            return text_response(StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade required\n");
        }
        let (tx, rx) = Outbox::bounded(OutboxLimits::capped(1024, 64 << 20));
        let _ = svc.relay.next_conn_id();
        upgrade::accept(req, svc.socket.clone(), rx, EchoConn { outbox: tx })
    }
}

#[derive(Debug)]
struct EchoConn {
    outbox: OutboxSender,
}

impl Handler for EchoConn {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        let frame = match msg {
            Inbound::Text(b) => Frame::Text(b),
            Inbound::Binary(b) => Frame::Binary(b),
        };
        self.outbox
            .push(frame)
            .map_err(|_| Disconnect::SlowConsumer)
    }

    fn on_close(self, _reason: &Disconnect) {}
}
