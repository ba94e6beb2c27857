//! [`Pairing`]: the HTTP entry point, the opening handshake, and the
//! per-connection state machine of the pairing service.
//!
//! A connection's life:
//! 1. **Before the 101.** Method and handshake headers are checked. The client
//!    is identified once ([`Identifier`]). A malformed channel id is upgraded and
//!    closed as an unknown channel (4404, saying the id is malformed), as the
//!    original's clients expect.
//! 2. **Opening.** The first frame (`{"channelid","link"}`) is queued, the
//!    connection subscribes to the channel's relay topic (ready on every node),
//!    and only then is it recorded in the [`ChannelBook`] — so it is subscribed
//!    before it counts as a member, and the id frame is always first. A refused
//!    join gets a fresh outbox closed with its [`Disconnect`]: the client sees the
//!    101, then a Close frame.
//! 3. **Messages.** Each text message is counted against the channel's limits in
//!    the book, then published on the relay to every member but the sender. A
//!    breach ends the channel: a close published on its topic reaches every
//!    member, on every node.
//! 4. **End.** The member leaves the book; metrics record how long it lasted.
//!
//! `conn_lifespan` runs from channel creation (wall clock, so nodes agree): each
//! member has a timer to the channel's deadline (cancelled when the member
//! goes), so the channel ends for everyone at the same moment without a
//! per-channel task.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, header};
use metrics::counter;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use switchboard_core::registry::Registration;
use switchboard_core::{
    ConnId, Disconnect, Frame, Outbox, OutboxSender, Registry, Relay, Subscription,
};
use switchboard_edge::socket::{Handler, Inbound, Keepalive, SocketConfig};
use switchboard_edge::{PeerAddr, text_response, upgrade};

use super::book::{ChannelBook, CreateError, JoinError, Limit, Member, MessageError};
use super::channel_id::ChannelId;
use super::client::{Client, ClientError, Identifier};
use super::geo::GeoDb;
use super::sender::{SenderJson, relay_envelope};
use super::stats::{Event, PairingMetrics, RequestKind};
use super::{PairingConfig, SERVICE, close};

/// Shared state of the pairing service.
#[derive(Debug)]
pub struct Pairing {
    cfg: PairingConfig,
    relay: Relay,
    registry: Registry,
    socket: SocketConfig,
    book: ChannelBook,
    identifier: Identifier,
    metrics: PairingMetrics,
}

/// The first frame every accepted connection receives; fields in wire order.
#[derive(serde::Serialize)]
struct Hello<'a> {
    channelid: &'a str,
    link: &'a str,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Create,
    Join(ChannelId),
    /// An id that is not a channel id: an unknown channel.
    Malformed,
}

/// Milliseconds since the Unix epoch, the book's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Pairing {
    /// Builds the service on `book` (channel state shared by every node).
    /// `socket` supplies the shutdown token and task tracker; its per-service
    /// fields come from `cfg`.
    ///
    /// A GeoIP database that cannot be opened, or a statsd host that cannot be
    /// resolved, is logged as a warning and the service runs without it.
    pub fn new(
        cfg: PairingConfig,
        relay: Relay,
        registry: Registry,
        socket: SocketConfig,
        book: ChannelBook,
    ) -> Arc<Self> {
        let socket = socket.for_service(
            SERVICE,
            cfg.max_message,
            Keepalive {
                ping_interval: cfg.heartbeat_interval,
                timeout: cfg.client_timeout,
                any_frame_resets: true,
            },
            cfg.write_timeout,
        );
        let geo = match &cfg.mmdb {
            None => {
                tracing::info!("no GeoIP database configured: senders carry no location");
                None
            }
            Some(path) => match GeoDb::open(path) {
                Ok(db) => {
                    tracing::info!(path = %path.display(), database_type = db.database_type(), "GeoIP database loaded");
                    Some(db)
                }
                Err(error) => {
                    tracing::warn!(%error, "GeoIP database not available: senders carry no location");
                    None
                }
            },
        };
        let metrics = match PairingMetrics::new(&cfg.statsd) {
            Ok(m) => {
                if m.has_statsd() {
                    tracing::info!(host = %cfg.statsd.host, prefix = %cfg.statsd.prefix, "sending statsd metrics");
                }
                m
            }
            Err(error) => {
                tracing::warn!(%error, "no statsd metrics");
                PairingMetrics::prometheus_only()
            }
        };
        let identifier =
            Identifier::new(cfg.trusted_proxies.clone(), cfg.default_lang.clone(), geo);
        Arc::new(Pairing {
            cfg,
            relay,
            registry,
            socket,
            book,
            identifier,
            metrics,
        })
    }

    /// The routes `{prefix}/v1/ws/` and `{prefix}/v1/ws/{id}`.
    pub fn router(self: &Arc<Self>) -> Router {
        let p = &self.cfg.prefix;
        Router::new()
            .route(
                &format!("{p}/v1/ws/"),
                any(Pairing::handle).with_state(self.clone()),
            )
            .route(
                &format!("{p}/v1/ws/{{id}}"),
                any(Pairing::handle).with_state(self.clone()),
            )
    }

    /// Number of channels with members on this node.
    pub fn channel_count(&self) -> usize {
        self.relay.hub().topic_count_with_prefix("pairing:")
    }

    /// The channel book.
    pub fn book(&self) -> &ChannelBook {
        &self.book
    }

    /// Whether a GeoIP database is loaded.
    pub fn has_geo(&self) -> bool {
        self.identifier.has_geo()
    }

    /// The service's settings.
    pub fn config(&self) -> &PairingConfig {
        &self.cfg
    }

    /// The axum handler for both routes.
    pub async fn handle(State(svc): State<Arc<Pairing>>, req: Request) -> Response {
        svc.dispatch(req).await
    }

    async fn dispatch(self: Arc<Self>, req: Request) -> Response {
        if req.method() != Method::GET {
            http_error("method");
            let mut r = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        let base = format!("{}/v1/ws/", self.cfg.prefix);
        let raw_id = req
            .uri()
            .path()
            .strip_prefix(base.as_str())
            .unwrap_or_default();
        // `%3D` for `=` and the like: the id is compared in its decoded form.
        let decoded = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
        let target = if raw_id.is_empty() {
            Target::Create
        } else {
            ChannelId::parse(&decoded).map_or(Target::Malformed, Target::Join)
        };
        if !upgrade::is_upgrade_request(req.headers()) {
            http_error("not_upgrade");
            return text_response(
                StatusCode::BAD_REQUEST,
                "No WebSocket Upgrade header found\n",
            );
        }
        if let Err(e) = upgrade::check(&req, &self.socket) {
            http_error("handshake");
            return e.response();
        }
        self.metrics.request(match target {
            Target::Create => RequestKind::New,
            Target::Join(_) => RequestKind::Existing,
            Target::Malformed => RequestKind::Error,
        });
        if let Target::Malformed = target {
            // The original upgrades it and closes: its clients and tests expect that.
            self.metrics.event(Event::UnknownChannel);
            tracing::info!("join refused: malformed channel id");
            return self.refuse(req, close::MALFORMED_CHANNEL);
        }
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .and_then(|p| p.0)
            .map(|a| a.ip());
        let client = match self.identifier.identify(peer, req.headers()) {
            Ok(c) => c,
            Err(ClientError::BadForwardedFor) => {
                self.metrics.event(Event::BadForwardedFor);
                tracing::warn!("refused: unparsable X-Forwarded-For from a trusted proxy");
                return self.refuse(req, close::BAD_FORWARDED_FOR);
            }
        };
        if client.remote_unknown {
            self.metrics.event(Event::RemoteUnknown);
        }
        if client.bad_accept_language {
            self.metrics.event(Event::BadAcceptLanguage);
        }
        self.open(req, target, client).await
    }

    /// Answers 101, then closes with `reason` (the original's clients only know "closed").
    fn refuse(&self, req: Request, reason: Disconnect) -> Response {
        let (tx, rx) = Outbox::bounded(self.cfg.outbox);
        tx.close(reason);
        upgrade::accept(req, self.socket.clone(), rx, Refused)
    }

    async fn open(self: Arc<Self>, req: Request, target: Target, client: Client) -> Response {
        let conn = self.relay.next_conn_id();
        let now = Instant::now();
        let wall = now_ms();
        let id = match target {
            Target::Create => ChannelId::random(),
            Target::Join(id) => id,
            Target::Malformed => unreachable!("refused before opening"),
        };
        let (tx, rx) = Outbox::bounded(self.cfg.outbox);
        // The id frame goes in first, before the subscription can queue anything.
        let _ = tx.push(hello_frame(&self.cfg.prefix, id));
        let topic = topic(id);
        // Subscribed on every node before counting as a member (and before the 101).
        let subscription = self.relay.subscribe(&topic, conn, tx.clone());
        if let Err(e) = self.relay.ready(&topic).await {
            drop(subscription);
            tracing::warn!(channel = %id, error = %e, "cluster bus not ready; connection refused");
            return self.refuse(req, close::BOOK_UNAVAILABLE);
        }
        let member = Member {
            conn,
            node: self.relay.node(),
            remote: client.remote,
        };
        let created = match target {
            Target::Create => match self.book.create(id, member, wall).await {
                Ok(()) => wall,
                Err(CreateError::Exists) => {
                    drop(subscription);
                    http_error("id_collision");
                    return text_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Channel id collision; try again\n",
                    );
                }
                Err(e @ CreateError::Unavailable(_)) => {
                    drop(subscription);
                    tracing::warn!(channel = %id, error = %e, "channel not created");
                    return self.refuse(req, close::BOOK_UNAVAILABLE);
                }
            },
            _ => match self.book.join(id, member, &self.cfg.limits, wall).await {
                Ok(created) => created,
                Err(e) => {
                    drop(subscription);
                    if let Some(event) = match e {
                        JoinError::Unknown => Some(Event::UnknownChannel),
                        JoinError::Expired => Some(Event::Timeout),
                        JoinError::Full => Some(Event::MaxConn),
                        JoinError::ForeignAddress => Some(Event::ForeignAddress),
                        JoinError::Unavailable(_) => None,
                    } {
                        self.metrics.event(event);
                    }
                    tracing::info!(channel = %id, reason = %e, "join refused");
                    return self.refuse(req, e.disconnect());
                }
            },
        };
        self.metrics.event(Event::Create);
        tracing::info!(
            channel = %id,
            session = %conn,
            created = matches!(target, Target::Create),
            "connection accepted"
        );
        let lifespan = CancellationToken::new();
        if let Some(deadline_ms) = self.cfg.limits.deadline_ms(created) {
            let deadline = now + std::time::Duration::from_millis(deadline_ms.saturating_sub(wall));
            tokio::spawn(lifespan_timer(
                self.clone(),
                tx.clone(),
                deadline,
                lifespan.clone(),
            ));
        }
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        let handler = Connection {
            svc: self.clone(),
            conn,
            channel: id,
            topic,
            sender: client.sender,
            started: now,
            _subscription: subscription,
            _registration: registration,
            _lifespan: lifespan.drop_guard(),
        };
        upgrade::accept(req, self.socket.clone(), rx, handler)
    }

    /// Ends channel `id` on `limit` for every member on every node, counting it once.
    fn end_channel(&self, id: ChannelId, topic: &str, limit: Limit) -> Disconnect {
        let event = match limit {
            Limit::Exchanges => Event::MaxMsg,
            Limit::Data => Event::MaxData,
            Limit::Lifespan => Event::Timeout,
        };
        self.metrics.event(event);
        let reason = limit.disconnect();
        tracing::info!(channel = %id, reason = reason.label(), "channel ended");
        self.relay.close_topic(topic, reason.clone(), None);
        reason
    }
}

/// Closes one member's connection at its channel's deadline, unless it goes first.
async fn lifespan_timer(
    svc: Arc<Pairing>,
    outbox: OutboxSender,
    deadline: Instant,
    gone: CancellationToken,
) {
    if expire_at(outbox, deadline, gone).await {
        svc.metrics.event(Event::Timeout);
    }
}

/// Closes `outbox` with [`close::LIFESPAN`] at `deadline` unless `gone` is
/// cancelled first or it is already closed; returns whether it closed it.
async fn expire_at(outbox: OutboxSender, deadline: Instant, gone: CancellationToken) -> bool {
    tokio::select! {
        () = gone.cancelled() => false,
        () = tokio::time::sleep_until(deadline) => {
            let open = !outbox.is_closed();
            outbox.close(close::LIFESPAN);
            open
        }
    }
}

/// The relay topic of a channel (services share the hub, so topics are namespaced).
fn topic(id: ChannelId) -> String {
    format!("pairing:{id}")
}

/// `{"channelid":"<id>","link":"<prefix>/v1/ws/<id>"}`.
fn hello_frame(prefix: &str, id: ChannelId) -> Frame {
    let channelid = id.to_string();
    let link = format!("{prefix}/v1/ws/{channelid}");
    let json = serde_json::to_string(&Hello {
        channelid: &channelid,
        link: &link,
    })
    .unwrap_or_default();
    Frame::text(json)
}

fn http_error(reason: &'static str) {
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => reason)
        .increment(1);
}

/// One accepted member of a channel.
#[derive(Debug)]
struct Connection {
    svc: Arc<Pairing>,
    conn: ConnId,
    channel: ChannelId,
    topic: String,
    sender: SenderJson,
    started: Instant,
    _subscription: Subscription,
    _registration: Registration,
    _lifespan: DropGuard,
}

impl Handler for Connection {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        let text = match msg {
            Inbound::Text(bytes) => bytes,
            Inbound::Binary(_) => {
                // The original logs and drops binary frames; so do we (without the payload).
                self.svc.metrics.event(Event::BinaryIgnored);
                tracing::debug!(channel = %self.channel, session = %self.conn, "binary frame ignored");
                return Ok(());
            }
        };
        let Ok(text) = std::str::from_utf8(&text) else {
            return Err(Disconnect::InvalidUtf8);
        };
        let envelope = relay_envelope(text, &self.sender);
        let svc = &self.svc;
        let size = envelope.len() as u64;
        match svc
            .book
            .record_message(self.channel, self.conn, size, &svc.cfg.limits, now_ms())
            .await
        {
            Ok(recorded) => {
                let published =
                    svc.relay
                        .publish(&self.topic, Frame::text(envelope), Some(self.conn));
                counter!("switchboard_pairing_deliveries_total")
                    .increment(recorded.receivers as u64);
                if recorded.receivers == 0 {
                    // The original drops messages nobody is there to receive, but counts them.
                    counter!("switchboard_pairing_drops_total").increment(1);
                }
                if published.bus.is_err() {
                    counter!("switchboard_pairing_bus_errors_total").increment(1);
                }
                Ok(())
            }
            // The channel ended while this message was on its way; our outbox is closed.
            Err(MessageError::Gone) => Ok(()),
            Err(MessageError::Breach { limit }) => {
                Err(svc.end_channel(self.channel, &self.topic, limit))
            }
            Err(MessageError::Unavailable(e)) => {
                tracing::warn!(channel = %self.channel, error = %e, "message refused: channel book unavailable");
                Err(close::BOOK_UNAVAILABLE)
            }
        }
    }

    fn on_close(self, reason: &Disconnect) {
        if *reason == Disconnect::Timeout {
            self.svc.metrics.event(Event::Expired);
        }
        self.svc.metrics.conn_length(self.started.elapsed());
        tracing::info!(
            channel = %self.channel,
            session = %self.conn,
            code = reason.code(),
            reason = reason.label(),
            "connection closed"
        );
        // Leaving is a step on the shared book: done in the background, the
        // socket is gone already.
        let (book, channel, conn) = (self.svc.book.clone(), self.channel, self.conn);
        tokio::spawn(async move {
            book.leave(channel, conn).await;
        });
    }
}

/// A refused connection: its outbox is closed before the 101, so the writer
/// sends the Close frame at once; anything the client sends meanwhile is ignored.
#[derive(Debug)]
struct Refused;

impl Handler for Refused {
    async fn on_message(&mut self, _msg: Inbound) -> Result<(), Disconnect> {
        Ok(())
    }

    fn on_close(self, reason: &Disconnect) {
        tracing::debug!(
            code = reason.code(),
            reason = reason.label(),
            "refused connection closed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_frame_is_compact_with_sorted_keys() {
        let id = ChannelId::parse("xdp7DlFoK9h6sMtcJJWTqg").expect("id");
        assert_eq!(
            hello_frame("", id),
            Frame::text(
                r#"{"channelid":"xdp7DlFoK9h6sMtcJJWTqg","link":"/v1/ws/xdp7DlFoK9h6sMtcJJWTqg"}"#
            )
        );
        assert_eq!(
            hello_frame("/pair", id),
            Frame::text(
                r#"{"channelid":"xdp7DlFoK9h6sMtcJJWTqg","link":"/pair/v1/ws/xdp7DlFoK9h6sMtcJJWTqg"}"#
            )
        );
        assert_eq!(topic(id), "pairing:xdp7DlFoK9h6sMtcJJWTqg");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifespan_timer_closes_at_the_deadline_unless_cancelled() {
        use switchboard_core::OutboxLimits;
        let start = Instant::now();
        let deadline = start + std::time::Duration::from_secs(300);
        let (tx, mut rx) = Outbox::bounded(OutboxLimits::default());
        let fired = tokio::spawn(expire_at(tx.clone(), deadline, CancellationToken::new()));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf).await, Err(close::LIFESPAN));
        assert_eq!(
            Instant::now(),
            deadline,
            "closed exactly at the deadline (paused clock)"
        );
        assert!(fired.await.expect("timer task"));

        let (tx, rx) = Outbox::bounded(OutboxLimits::default());
        let gone = CancellationToken::new();
        let timer = tokio::spawn(expire_at(
            tx.clone(),
            deadline + std::time::Duration::from_secs(300),
            gone.clone(),
        ));
        drop(gone.drop_guard());
        assert!(
            !timer.await.expect("timer task"),
            "a member that left is not closed"
        );
        assert!(rx.closed_reason().is_none());
    }
}
