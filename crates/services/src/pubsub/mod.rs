//! The pubsub service: a drop-in for Automattic's Pinghub.
//!
//! A channel is the percent-decoded request path without the query, relative to
//! the service's mount prefix (so `/pubsub/a/b` natively and `/a/b` in the
//! Pinghub persona are the same channel `/a/b`). A WebSocket connect subscribes
//! (before the 101 is sent); every non-empty text message goes to every
//! subscriber, the sender included, in one order; an empty message is echoed to
//! its sender only (the keepalive). `POST` publishes the body. `GET` serves a
//! small self-contained test page. See `docs/compatibility.md` for where this
//! deliberately differs from Pinghub.
//!
//! Channels under a configured history prefix keep their recent messages, and a
//! subscriber may ask on its query string for a replay, envelopes with offsets,
//! or recovery after a reconnect ([`history`], `docs/pubsub-history.md`). Its
//! outbox is then held while it is subscribed and the history is read, so the
//! replay and the live messages meet with no gap and no duplicate.

pub mod history;
mod page;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use metrics::counter;

use switchboard_core::bus::{HistoryError, HistoryQuery};
use switchboard_core::{
    ConnId, Disconnect, Frame, Outbox, OutboxLimits, OutboxSender, OutboxView, Registry, Relay,
    Route, Subscription,
};
use switchboard_edge::socket::{Handler, Inbound, Keepalive, SocketConfig};
use switchboard_edge::{OriginPolicy, text_response, upgrade};

/// The service name used in metrics and the registry.
pub const SERVICE: &str = "pubsub";

/// Settings of the pubsub service.
#[derive(Debug, Clone)]
pub struct PubsubConfig {
    /// The mount prefix without a trailing slash (`""` at the root, `/pubsub` natively).
    pub prefix: String,
    /// Allowed browser origins for WebSockets.
    pub origins: OriginPolicy,
    /// Largest WebSocket message (Pinghub: 65536; larger closes with 1009).
    pub max_message: usize,
    /// Largest POST body (larger answers 413).
    pub max_post: usize,
    /// Per-connection outbox bounds (overflow disconnects the slow subscriber with 1013).
    pub outbox: OutboxLimits,
    /// Server ping period (Pinghub: 27 s).
    pub ping_interval: Duration,
    /// Time without a pong before the connection ends (Pinghub: 30 s; data frames don't count).
    pub pong_timeout: Duration,
    /// Longest one socket flush may take (Pinghub: 10 s).
    pub write_timeout: Duration,
    /// Channel prefixes that keep history (`[[pubsub.history]]`); empty: none
    /// do, and the query string is ignored as in Pinghub.
    pub history: Vec<String>,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            prefix: String::new(),
            origins: OriginPolicy::default(),
            max_message: 65536,
            max_post: 65536,
            outbox: OutboxLimits::default(),
            ping_interval: Duration::from_secs(27),
            pong_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            history: Vec::new(),
        }
    }
}

/// Shared state of the pubsub service.
#[derive(Debug)]
pub struct Pubsub {
    cfg: PubsubConfig,
    relay: Relay,
    registry: Registry,
    socket: SocketConfig,
    stats: PubsubStats,
}

/// Running totals of the pubsub service since start, read by the web console.
#[derive(Debug, Default)]
pub struct PubsubStats {
    /// Messages published (WebSocket and POST).
    pub messages: AtomicU64,
    /// Frames queued to subscribers.
    pub deliveries: AtomicU64,
    /// Publishes that found no subscriber.
    pub drops: AtomicU64,
    /// Subscribers disconnected as slow.
    pub slow_consumers: AtomicU64,
    /// Retained messages replayed to subscribers (`last` and `since`).
    pub replayed: AtomicU64,
}

impl Pubsub {
    /// Builds the service. `socket` supplies the shutdown token and task tracker;
    /// its per-service fields are overridden from `cfg`.
    pub fn new(
        cfg: PubsubConfig,
        relay: Relay,
        registry: Registry,
        socket: SocketConfig,
    ) -> Arc<Self> {
        let socket = socket.for_service(
            SERVICE,
            cfg.max_message,
            Keepalive {
                ping_interval: cfg.ping_interval,
                timeout: cfg.pong_timeout,
                any_frame_resets: false,
            },
            cfg.write_timeout,
        );
        Arc::new(Pubsub {
            cfg,
            relay,
            registry,
            socket,
            stats: PubsubStats::default(),
        })
    }

    /// Number of channels with subscribers on this node.
    pub fn channel_count(&self) -> usize {
        self.relay.hub().topic_count_with_prefix("pubsub:")
    }

    /// Running totals for the console.
    pub fn stats(&self) -> &PubsubStats {
        &self.stats
    }

    /// The axum handler for every path under the prefix.
    pub async fn handle(State(svc): State<Arc<Pubsub>>, req: Request) -> Response {
        svc.dispatch(req).await
    }

    async fn dispatch(self: Arc<Self>, req: Request) -> Response {
        let channel = match channel_of(req.uri().path(), &self.cfg.prefix) {
            Ok(c) => c,
            Err(e) => return bad_request(e),
        };
        if upgrade::is_upgrade_request(req.headers()) {
            return self.subscribe(req, channel).await;
        }
        match *req.method() {
            Method::GET => page::response(&channel, self.keeps_history(&channel)),
            Method::POST => self.post(req, &channel).await,
            _ => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "method").increment(1);
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                r
            }
        }
    }

    async fn subscribe(self: Arc<Self>, req: Request, channel: String) -> Response {
        if req.method() != Method::GET {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "method")
                .increment(1);
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if !self.cfg.origins.allows(origin)
            || req
                .headers()
                .get(header::ORIGIN)
                .is_some_and(|v| v.to_str().is_err())
        {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "origin")
                .increment(1);
            return text_response(StatusCode::FORBIDDEN, "Forbidden\n");
        }
        if let Err(e) = upgrade::check(&req, &self.socket) {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "handshake").increment(1);
            return e.response();
        }
        let asked = if self.cfg.history.is_empty() {
            history::Request::PLAIN
        } else {
            match history::parse(req.uri().query(), self.keeps_history(&channel)) {
                Ok(a) => a,
                Err(e) => {
                    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => e.label()).increment(1);
                    return text_response(StatusCode::BAD_REQUEST, e.to_string());
                }
            }
        };
        let (tx, rx) = Outbox::with_view(self.cfg.outbox, asked.view);
        let conn = self.relay.next_conn_id();
        let topic = topic(&channel);
        let query = asked.query();
        if query.is_some() {
            // Live messages wait behind the history read below.
            tx.hold();
        }
        // Invariant 4: subscribed, on every node, before the 101 goes out.
        let subscription = self.relay.subscribe(&topic, conn, tx.clone());
        if let Err(e) = self.relay.ready(&topic).await {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "bus")
                .increment(1);
            tracing::warn!(error = %e, "pubsub: cluster bus not ready; refusing a subscriber");
            return unavailable("Error: the cluster bus is unavailable; try again.\n");
        }
        if let Some(query) = query
            && let Err(r) = self.replay(&topic, query, asked.view, &tx).await
        {
            return r;
        }
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        let handler = Subscriber {
            svc: self.clone(),
            conn,
            topic,
            outbox: tx,
            _subscription: subscription,
            _registration: registration,
        };
        upgrade::accept(req, self.socket.clone(), rx, handler)
    }

    /// Whether `channel` keeps history.
    fn keeps_history(&self, channel: &str) -> bool {
        self.cfg
            .history
            .iter()
            .any(|p| channel.starts_with(p.as_str()))
    }

    /// Reads what the subscriber asked of the history and releases its held
    /// outbox with it in front (see `OutboxSender::release`).
    async fn replay(
        &self,
        topic: &str,
        query: HistoryQuery,
        view: OutboxView,
        tx: &OutboxSender,
    ) -> Result<(), Response> {
        let envelope = view == OutboxView::Envelope;
        let (mut prefix, top) = match self.relay.history(topic, query).await {
            Ok(h) => {
                let n = h.frames.len();
                self.stats.replayed.fetch_add(n as u64, Ordering::Relaxed);
                counter!("switchboard_pubsub_replayed_total").increment(n as u64);
                let mut prefix = Vec::with_capacity(n + 1);
                if envelope {
                    prefix.push(history::position(&h.epoch, h.top, n));
                }
                prefix.extend(h.frames);
                (prefix, h.top)
            }
            Err(HistoryError::EpochChanged { epoch, top }) => {
                (vec![self.gap(history::Gap::EpochChanged, &epoch, top)], top)
            }
            Err(HistoryError::Expired { epoch, top }) => {
                (vec![self.gap(history::Gap::Expired, &epoch, top)], top)
            }
            Err(e @ (HistoryError::Unavailable(_) | HistoryError::NotKept)) => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "history").increment(1);
                tracing::warn!(error = %e, "pubsub: history unavailable; refusing a subscriber");
                return Err(unavailable(
                    "Error: the channel's history is unavailable; try again.\n",
                ));
            }
        };
        if !envelope {
            // Plain clients get no control messages; a gap cannot reach them
            // (since implies envelopes).
            prefix.retain(|f| f.offset().is_some());
        }
        tx.release(prefix, top);
        Ok(())
    }

    fn gap(&self, reason: history::Gap, epoch: &str, top: u64) -> Frame {
        counter!("switchboard_pubsub_history_gaps_total", "reason" => reason.as_str()).increment(1);
        history::gap(reason, epoch, top)
    }

    async fn post(&self, req: Request, channel: &str) -> Response {
        let body = match Limited::new(req.into_body(), self.cfg.max_post)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "too_large").increment(1);
                return text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "Error: request body larger than {} bytes.\n",
                        self.cfg.max_post
                    ),
                );
            }
            Err(_) => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "body")
                    .increment(1);
                return text_response(
                    StatusCode::BAD_REQUEST,
                    "Error: bad request. Unable to read POST body.\n",
                );
            }
        };
        let Some(frame) = Frame::text_checked(body) else {
            counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "utf8")
                .increment(1);
            return text_response(
                StatusCode::BAD_REQUEST,
                "Error: bad request. Body must be valid Unicode (UTF-8).\n",
            );
        };
        if !frame.is_empty() {
            counter!("switchboard_pubsub_messages_total", "source" => "post").increment(1);
            self.publish(&topic(channel), frame);
        }
        let mut r = text_response(StatusCode::OK, "OK\n");
        r.headers_mut().remove(header::X_CONTENT_TYPE_OPTIONS);
        r
    }

    fn publish(&self, topic: &str, frame: Frame) {
        let published = self.relay.publish(topic, frame, None);
        let bus = published.bus;
        // On the sequenced route this node's deliveries happen when the bus brings
        // the message back, and are not counted here.
        let fanout = published.local.unwrap_or_default();
        let delivered_here = published.local.is_some();
        let st = &self.stats;
        st.messages.fetch_add(1, Ordering::Relaxed);
        st.deliveries
            .fetch_add(fanout.delivered as u64, Ordering::Relaxed);
        counter!("switchboard_pubsub_deliveries_total").increment(fanout.delivered as u64);
        if delivered_here
            && bus == Ok(Route::Local)
            && fanout.delivered == 0
            && fanout.overflowed == 0
        {
            st.drops.fetch_add(1, Ordering::Relaxed);
            counter!("switchboard_pubsub_drops_total").increment(1);
        }
        if bus.is_err() {
            counter!("switchboard_pubsub_bus_errors_total").increment(1);
        }
    }
}

/// A 503 that asks the client to retry in a second.
fn unavailable(body: &'static str) -> Response {
    let mut r = text_response(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The hub topic of a channel: services share the hub, so each namespaces its topics.
pub fn topic(channel: &str) -> String {
    format!("pubsub:{channel}")
}

/// The envelope of a message from a channel with history, for clients that
/// asked for positions: `{"offset":N,"epoch":"E","data":"<text>"}` (see
/// `docs/pubsub-history.md`).
pub fn render_envelope(offset: u64, epoch: &str, text: &[u8]) -> Bytes {
    let data = String::from_utf8_lossy(text);
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    Bytes::from(format!(
        r#"{{"offset":{offset},"epoch":{},"data":{}}}"#,
        quote(epoch),
        quote(&data)
    ))
}

/// Why a path is not a valid channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The decoded path is not UTF-8.
    #[error("Error: bad request. Path must be valid Unicode (UTF-8).\n")]
    NotUtf8,
    /// The decoded path is empty or longer than 256 characters.
    #[error("Error: bad request. Path length must be 1-256 Unicode characters (UTF-8).\n")]
    Length,
}

fn bad_request(e: ChannelError) -> Response {
    let reason = match e {
        ChannelError::NotUtf8 => "path_utf8",
        ChannelError::Length => "path_length",
    };
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => reason)
        .increment(1);
    text_response(StatusCode::BAD_REQUEST, e.to_string())
}

/// The channel for a raw (percent-encoded) request path under `prefix`:
/// percent-decoded, valid UTF-8, 1-256 characters counting the leading `/`.
pub fn channel_of(raw_path: &str, prefix: &str) -> Result<String, ChannelError> {
    let rel = raw_path.strip_prefix(prefix).unwrap_or(raw_path);
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(rel).collect();
    let mut s = String::from_utf8(decoded).map_err(|_| ChannelError::NotUtf8)?;
    if !s.starts_with('/') {
        s.insert(0, '/');
    }
    let n = s.chars().count();
    if !(1..=256).contains(&n) {
        return Err(ChannelError::Length);
    }
    Ok(s)
}

/// One subscribed WebSocket.
#[derive(Debug)]
struct Subscriber {
    svc: Arc<Pubsub>,
    conn: ConnId,
    topic: String,
    outbox: OutboxSender,
    _subscription: Subscription,
    _registration: switchboard_core::registry::Registration,
}

impl Handler for Subscriber {
    async fn on_message(&mut self, msg: Inbound) -> Result<(), Disconnect> {
        match msg {
            Inbound::Binary(_) => Err(Disconnect::BinaryUnsupported),
            Inbound::Text(b) if b.is_empty() => {
                // The keepalive: echoed to the sender only.
                let _ = self.outbox.push(Frame::Text(Bytes::new()));
                Ok(())
            }
            Inbound::Text(b) => {
                counter!("switchboard_pubsub_messages_total", "source" => "ws").increment(1);
                self.svc.publish(&self.topic, Frame::Text(b));
                Ok(())
            }
        }
    }

    fn on_close(self, reason: &Disconnect) {
        // Whichever way it was slow (outbox full or a stalled write); the
        // Prometheus count is the socket runtime's.
        if *reason == Disconnect::SlowConsumer {
            self.svc
                .stats
                .slow_consumers
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::trace!(conn = %self.conn, reason = reason.label(), "pubsub subscriber left");
    }
}

/// The `Content-Type` of the test page.
pub(crate) const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_is_the_decoded_path_without_prefix() {
        let cases: &[(&str, &str, Result<&str, ChannelError>)] = &[
            ("/a/b", "", Ok("/a/b")),
            ("/a%2Fb", "", Ok("/a/b")),
            ("/pubsub/a/b", "/pubsub", Ok("/a/b")),
            ("/pubsub/", "/pubsub", Ok("/")),
            ("/%C3%A9t%C3%A9", "", Ok("/été")),
            ("/%FF", "", Err(ChannelError::NotUtf8)),
            ("/%ED%A0%80", "", Err(ChannelError::NotUtf8)),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(
                channel_of(path, prefix).as_deref(),
                want.as_deref(),
                "{path}"
            );
        }
    }

    #[test]
    fn length_counts_characters_including_the_slash() {
        let ok = format!("/{}", "a".repeat(255));
        let long = format!("/{}", "a".repeat(256));
        assert!(channel_of(&ok, "").is_ok());
        assert_eq!(channel_of(&long, ""), Err(ChannelError::Length));
        let ok_e = format!("/{}", "%C3%A9".repeat(255));
        let long_e = format!("/{}", "%C3%A9".repeat(256));
        assert!(channel_of(&ok_e, "").is_ok());
        assert_eq!(channel_of(&long_e, ""), Err(ChannelError::Length));
    }
}
