//! `GET /v1/connect`: the WebSocket handshake and the per-connection state
//! machine.
//!
//! Identity is settled before the 101 (invariant 4: a completed handshake
//! means reachable, on every node), but refusals are sent after it, as the
//! original does: close 4000 `UNAUTHENTICATED` or `ALREADY_EXISTS`. A
//! connection that is let in holds a cluster-wide [`ClaimGuard`] on its name
//! (the [`Presence`](switchboard_core::Presence) seam) and [`Subscription`]s to
//! its user topic and to the kick topic for exactly its lifetime: all are
//! guards owned by the [`Session`], dropped whatever ends the socket (close,
//! TCP drop, bad JSON, timeout, kick, shutdown). So a user is never left
//! online without a socket, and a message can never reach a socket that does
//! not belong to its target.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use metrics::counter;
use switchboard_core::registry::Registration;
use switchboard_core::{
    ClaimError, ClaimGuard, ConnId, Disconnect, Outbox, OutboxSender, Subscription,
};
use switchboard_edge::socket::{Handler, Inbound};
use switchboard_edge::text_response;
use switchboard_edge::upgrade::{self, HandshakeError};

use super::codes::{self, reason};
use super::identity::log_tag;
use super::{KICK_TOPIC, NAMESPACE, Rtc, SERVICE, http_error, topic, wire};

/// The original's answer to anything at `/v1/connect` that is not a usable upgrade.
fn upgrade_required() -> Response {
    text_response(StatusCode::UPGRADE_REQUIRED, "Upgrade Required")
}

impl Rtc {
    /// `GET /v1/connect`.
    pub(crate) async fn connect(self: Arc<Self>, req: Request) -> Response {
        if !upgrade::is_upgrade_request(req.headers()) || req.method() != Method::GET {
            http_error("upgrade_required");
            return upgrade_required();
        }
        let origin_ok = match req.headers().get(header::ORIGIN) {
            None => true,
            Some(o) => o.to_str().is_ok_and(|o| self.cfg.origins.allows(Some(o))),
        };
        if !origin_ok {
            http_error("origin");
            codes::reject(reason::ORIGIN);
            return text_response(StatusCode::FORBIDDEN, "Forbidden");
        }
        match upgrade::check(&req, &self.socket) {
            Ok(()) => {}
            Err(e @ HandshakeError::ShuttingDown) => return e.response(),
            Err(e @ HandshakeError::KeyInvalid) => {
                http_error("handshake");
                return e.response();
            }
            Err(e) => {
                http_error("handshake");
                let mut r = upgrade_required();
                if e == HandshakeError::Version {
                    r.headers_mut()
                        .insert("sec-websocket-version", HeaderValue::from_static("13"));
                }
                return r;
            }
        }
        let auth = self.authenticate(req.headers()).await;
        let (tx, rx) = Outbox::bounded(self.cfg.outbox);
        let conn = self.relay.next_conn_id();
        let name = match auth {
            Ok(name) => name,
            Err(e) => {
                codes::reject(e.label());
                tx.close(e.disconnect());
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
        };
        // Registered first: the presence seam asks the registry whether this
        // node's claimant is still open.
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        let claim = match self.presence.claim(NAMESPACE, &name, conn).await {
            Ok(claim) => claim,
            Err(ClaimError::Taken(_)) => {
                codes::reject(reason::ALREADY_EXISTS);
                tx.close(codes::ALREADY_EXISTS);
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
            Err(e @ ClaimError::Unavailable(_)) => {
                tracing::warn!(error = %e, "rtc: cannot claim a name: presence unavailable");
                codes::reject(reason::STORE);
                tx.close(codes::STORE_UNAVAILABLE);
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
        };
        // Reachable, and kickable, on every node before the 101 goes out (invariant 4).
        let user_topic = topic(&name);
        let subscription = self.relay.subscribe(&user_topic, conn, tx.clone());
        let kick = self.relay.subscribe(KICK_TOPIC, conn, tx.clone());
        for t in [user_topic.as_str(), KICK_TOPIC] {
            if let Err(e) = self.relay.ready(t).await {
                tracing::warn!(error = %e, "rtc: cluster bus not ready; refusing the connection");
                codes::reject(reason::BUS);
                tx.close(codes::BUS_UNAVAILABLE);
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
        }
        tracing::debug!(%conn, user = %log_tag(&name), "rtc: user online");
        let session = Session {
            svc: self.clone(),
            name,
            conn,
            outbox: tx,
            _claim: claim,
            _subscriptions: [subscription, kick],
            _registration: registration,
        };
        upgrade::accept(req, self.socket.clone(), rx, session)
    }
}

/// A refused socket: its outbox is already closed with the reason, so the
/// runtime sends the close frame first; nothing it sends is read.
#[derive(Debug)]
struct Refused;

impl Handler for Refused {
    async fn on_message(&mut self, _msg: Inbound) -> Result<(), Disconnect> {
        Ok(())
    }

    fn on_close(self, _reason: &Disconnect) {}
}

/// One online user's socket.
#[derive(Debug)]
struct Session {
    svc: Arc<Rtc>,
    name: String,
    conn: ConnId,
    outbox: OutboxSender,
    _claim: ClaimGuard,
    _subscriptions: [Subscription; 2],
    _registration: Registration,
}

impl Session {
    fn not_found(&self, why: &'static str) {
        codes::reject(why);
        self.svc.stats.not_found.fetch_add(1, Ordering::Relaxed);
        // If our own outbox overflows, it closes this socket as a slow consumer.
        let _ = self
            .outbox
            .push(wire::target_not_found(self.svc.cfg.trailing_newline));
    }
}

impl Handler for Session {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        let (Inbound::Text(bytes) | Inbound::Binary(bytes)) = msg;
        let m = match wire::parse(&bytes) {
            Ok(m) => m,
            Err(e) => {
                codes::reject(reason::BAD_JSON);
                let end = codes::bad_json(&e.to_string());
                // Closing the outbox frees the name now, not after the close
                // handshake: a reconnect right after the close frame succeeds.
                self.outbox.close(end.clone());
                return Err(end);
            }
        };
        if m.target.is_empty() {
            self.not_found(reason::MISSING_TARGET);
            return Ok(());
        }
        let frame = wire::forward(&self.name, &m, self.svc.cfg.trailing_newline);
        // On this node if the target is here, else on whichever node it is:
        // nobody anywhere is TARGET_NOT_FOUND.
        match self
            .svc
            .relay
            .deliver_to_one(&topic(&m.target), frame)
            .await
        {
            Ok(0) => self.not_found(reason::TARGET_NOT_FOUND),
            Ok(_) => {
                self.svc.stats.relayed.fetch_add(1, Ordering::Relaxed);
                counter!("switchboard_rtc_relayed_total").increment(1);
            }
            Err(e) => {
                tracing::debug!(error = %e, "rtc: cluster bus could not deliver");
                self.not_found(reason::BUS);
            }
        }
        Ok(())
    }

    fn on_close(self, why: &Disconnect) {
        if *why == Disconnect::TooBig {
            codes::reject(reason::TOO_BIG);
        }
        tracing::debug!(conn = %self.conn, user = %log_tag(&self.name), reason = why.label(), "rtc: user offline");
        // Dropping self releases the claim, the subscription and the registration.
    }
}
