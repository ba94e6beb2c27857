//! The meetings service: member meetings with chat, moderator controls, polls
//! and a permanent archive, a drop-in for pgeu-meetingserver (the server that
//! pgeu-system's meeting page talks to).
//!
//! `GET /ws/meeting/{meeting}/{54-character key}/{highest seen id}` opens a
//! member's WebSocket ([`wire`] has the messages). Each meeting is one actor
//! ([`actor`]) that owns its state machine, its members, its running poll and
//! the poll's timer, and is the meeting's only writer: a line is stored before
//! anyone sees it. Connections reach it through a [`MeetingHandle`] kept in
//! this node's directory; all meeting state lives in the actor, re-derivable
//! from the store, so the directory can become "ask the owner node" later.
//!
//! Ends the pgeu page must recover from (restart, ping timeout, a slow client,
//! a refusal after the `disconnect` message) drop the TCP connection without a
//! Close frame: the page reconnects only on 1006. Deliberate differences from
//! the original are listed in `docs/compatibility.md`.

mod actor;
pub mod admin;
mod handle;
pub mod page;
mod poll;
mod session;
pub mod texts;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use metrics::counter;
use switchboard_core::store::meetings::{MeetingId, MeetingState};
use switchboard_core::store::{MeetingAdmin, MeetingStore};
use switchboard_core::{Disconnect, Outbox, OutboxLimits, Registry, Relay};
use switchboard_edge::socket::{Ending, Handler, Inbound, Keepalive, SocketConfig};
use switchboard_edge::{PeerAddr, text_response, upgrade};

pub use handle::{MeetingHandle, MeetingStatus, MemberStatus, SendError};

use actor::ActorConfig;
use handle::{Cmd, Join, Sink};
use session::Session;

/// The service name, in metrics and the connection registry.
pub const SERVICE: &str = "meetings";

/// The WebSocket path prefix, as pgeu-system's page and nginx expect it.
pub const WS_PREFIX: &str = "/ws/meeting/";

/// Settings of the meetings service.
#[derive(Debug, Clone)]
pub struct MeetingsConfig {
    /// The one allowed `Origin`, compared exactly; `None` allows every origin
    /// (the original's `-origin *`). A request without `Origin` is allowed.
    pub origin: Option<String>,
    /// Show `X-Forwarded-For` beside the peer address in the status report.
    pub behind_proxy: bool,
    /// Largest inbound message in bytes (the original: 10240; larger: close 1009).
    pub max_message: usize,
    /// Per-connection outbox bounds (overflow: the connection is dropped, and
    /// the page reconnects and replays what it missed).
    pub outbox: OutboxLimits,
    /// Server ping period (the original: 60 s).
    pub ping_interval: Duration,
    /// Time without a pong before the connection is dropped (the original: 90 s).
    pub pong_timeout: Duration,
    /// Longest one socket write may take (the original: 10 s).
    pub write_timeout: Duration,
    /// Commands queued per meeting (overflow: the sender gets an error).
    pub queue: usize,
    /// Most commands a meeting takes at once (the largest group commit).
    pub batch: usize,
    /// How often a meeting re-reads its state from the store.
    pub state_poll: Duration,
    /// Serve `/__meetingstatus` on this router (the original's listener has it).
    pub status_endpoint: bool,
    /// How long a poll's "minute" is (60 s; shorter only in tests and demos).
    pub poll_minute: Duration,
}

impl Default for MeetingsConfig {
    fn default() -> Self {
        MeetingsConfig {
            origin: None,
            behind_proxy: false,
            max_message: 10_240,
            outbox: OutboxLimits {
                max_messages: 1024,
                max_bytes: 16 << 20,
            },
            ping_interval: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            queue: 4096,
            batch: 256,
            state_poll: Duration::from_secs(5),
            status_endpoint: true,
            poll_minute: Duration::from_secs(60),
        }
    }
}

/// Every end of a meetings socket that the server decides is an abort: the
/// page reconnects (and replays what it missed) only after a 1006.
fn ending(_: &Disconnect) -> Ending {
    Ending::Abort
}

/// The disconnect (never sent as a Close frame, see [`ending`]) that ends a
/// connection after a `disconnect` message with `reason`.
pub(crate) fn disconnect_for(reason: &'static str) -> Disconnect {
    let label = match reason {
        texts::NOT_ALLOWED => "not_allowed",
        texts::CONNECTION_ERROR => "connection_error",
        texts::REPLACED => "replaced",
        texts::KICKED => "kicked",
        texts::CLOSED => "closed",
        _ => "refused",
    };
    Disconnect::service(4000, reason, label)
}

/// The meetings service of one node.
#[derive(Debug)]
pub struct Meetings {
    cfg: MeetingsConfig,
    store: Arc<dyn MeetingStore>,
    admin: Option<Arc<dyn MeetingAdmin>>,
    relay: Relay,
    registry: Registry,
    socket: SocketConfig,
    /// This node's actors, by meeting: where a connection finds its meeting.
    directory: Arc<Mutex<HashMap<MeetingId, MeetingHandle>>>,
    started: SystemTime,
}

impl Meetings {
    /// Builds the service on `store` (pgeu-system's database or Switchboard's
    /// own); `admin` enables the setup API (native mode).
    pub fn new(
        cfg: MeetingsConfig,
        store: Arc<dyn MeetingStore>,
        admin: Option<Arc<dyn MeetingAdmin>>,
        relay: Relay,
        registry: Registry,
        socket: SocketConfig,
    ) -> Arc<Self> {
        let mut socket = socket.for_service(
            SERVICE,
            cfg.max_message,
            Keepalive {
                ping_interval: cfg.ping_interval,
                timeout: cfg.pong_timeout,
                any_frame_resets: false,
            },
            cfg.write_timeout,
        );
        socket.ending = ending;
        Arc::new(Meetings {
            cfg,
            store,
            admin,
            relay,
            registry,
            socket,
            directory: Arc::default(),
            started: SystemTime::now(),
        })
    }

    /// The service's settings.
    pub fn config(&self) -> &MeetingsConfig {
        &self.cfg
    }

    /// The store the meetings live in.
    pub fn store(&self) -> &Arc<dyn MeetingStore> {
        &self.store
    }

    fn directory(&self) -> MutexGuard<'_, HashMap<MeetingId, MeetingHandle>> {
        self.directory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Meetings with a running actor on this node.
    pub fn running(&self) -> Vec<MeetingHandle> {
        let mut v: Vec<MeetingHandle> = self.directory().values().cloned().collect();
        v.sort_by_key(MeetingHandle::id);
        v
    }

    /// The meeting's handle, starting its actor if it is not running. `None`
    /// if the meeting does not exist or is closed (or the store cannot say).
    pub async fn meeting(&self, id: MeetingId) -> Option<MeetingHandle> {
        if let Some(h) = self.directory().get(&id).filter(|h| !h.is_closed()) {
            return Some(h.clone());
        }
        let state = match self.store.meeting_state(id).await {
            Ok(Some(s)) if s != MeetingState::Closed => s,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(meeting = id, error = %e, "cannot read the meeting");
                return None;
            }
        };
        let mut dir = self.directory();
        if let Some(h) = dir.get(&id).filter(|h| !h.is_closed()) {
            return Some(h.clone());
        }
        let weak = Arc::downgrade(&self.directory);
        let handle = actor::spawn(
            id,
            state,
            self.store.clone(),
            self.relay.clone(),
            ActorConfig {
                queue: self.cfg.queue,
                batch: self.cfg.batch,
                state_poll: self.cfg.state_poll,
                poll_minute: self.cfg.poll_minute,
            },
            self.socket.shutdown.clone(),
            move || {
                if let Some(dir) = weak.upgrade() {
                    let mut dir = dir.lock().unwrap_or_else(|e| e.into_inner());
                    if dir.get(&id).is_some_and(MeetingHandle::is_closed) {
                        dir.remove(&id);
                    }
                }
            },
        );
        dir.insert(id, handle.clone());
        Some(handle)
    }

    /// The axum handler for everything under [`WS_PREFIX`].
    pub async fn handle_ws(State(svc): State<Arc<Meetings>>, req: Request) -> Response {
        svc.connect(req).await
    }

    /// The axum handler for `/__meetingstatus`.
    pub async fn handle_status(State(svc): State<Arc<Meetings>>) -> Response {
        svc.status_report().await
    }

    async fn connect(self: Arc<Self>, req: Request) -> Response {
        let Some((id, key, first)) = parse_path(req.uri().path()) else {
            return refuse_http(StatusCode::NOT_FOUND, "not_found", "404 page not found\n");
        };
        let key = key.to_owned();
        // The original's order: the meeting (404), then the origin (403), then the handshake (400).
        if self
            .directory()
            .get(&id)
            .is_none_or(MeetingHandle::is_closed)
        {
            match self.store.meeting_state(id).await {
                Ok(Some(s)) if s != MeetingState::Closed => {}
                _ => {
                    return refuse_http(StatusCode::NOT_FOUND, "not_found", "404 page not found\n");
                }
            }
        }
        let origin = req.headers().get(header::ORIGIN);
        if let (Some(want), Some(got)) = (&self.cfg.origin, origin)
            && got.as_bytes() != want.as_bytes()
        {
            return refuse_http(StatusCode::FORBIDDEN, "origin", "Forbidden\n");
        }
        if !upgrade::is_upgrade_request(req.headers()) {
            return refuse_http(StatusCode::BAD_REQUEST, "not_websocket", "Bad Request\n");
        }
        match upgrade::check(&req, &self.socket) {
            Ok(()) => {}
            Err(e @ upgrade::HandshakeError::ShuttingDown) => return e.response(),
            Err(e) => {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "handshake").increment(1);
                return e.response();
            }
        }
        let remote = self.remote(&req);
        let (tx, rx) = Outbox::bounded(self.cfg.outbox);
        let member = match self.store.member_by_key(id, &key).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::info!(meeting = id, "unknown key refused");
                counter!("switchboard_meetings_refused_total", "reason" => "key").increment(1);
                actor::refuse(&tx, texts::NOT_ALLOWED);
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
            Err(e) => {
                tracing::warn!(meeting = id, error = %e, "cannot check a key");
                counter!("switchboard_meetings_refused_total", "reason" => "store").increment(1);
                actor::refuse(&tx, texts::CONNECTION_ERROR);
                return upgrade::accept(req, self.socket.clone(), rx, Refused);
            }
        };
        let Some(meeting) = self.meeting(id).await else {
            actor::refuse(&tx, texts::CLOSED);
            return upgrade::accept(req, self.socket.clone(), rx, Refused);
        };
        let conn = self.relay.next_conn_id();
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        let join = Join {
            member: member.clone(),
            conn,
            sink: Sink::Local(tx.clone()),
            first,
            remote,
        };
        // Queued before the 101: a completed handshake means the join is on its way.
        if meeting.send(Cmd::Join(Box::new(join))).await.is_err() {
            actor::refuse(&tx, texts::CLOSED);
            return upgrade::accept(req, self.socket.clone(), rx, Refused);
        }
        tracing::debug!(meeting = id, key_id = member.key_id, %conn, "member connecting");
        let session = Session {
            meeting,
            member,
            conn,
            outbox: tx,
            _registration: registration,
        };
        upgrade::accept(req, self.socket.clone(), rx, session)
    }

    /// The peer as the status report shows it: `"XFF (peer)"` behind a proxy,
    /// `@` for a unix socket peer.
    fn remote(&self, req: &Request) -> String {
        let peer = match req.extensions().get::<PeerAddr>().and_then(|p| p.0) {
            Some(a) => a.to_string(),
            None => "@".to_owned(),
        };
        if self.cfg.behind_proxy {
            let xff = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{xff} ({peer})")
        } else {
            peer
        }
    }

    async fn status_report(&self) -> Response {
        let mut meetings = Vec::new();
        for h in self.running() {
            if let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(2), h.status()).await {
                meetings.push(s);
            }
        }
        let metrics = tokio::runtime::Handle::current().metrics();
        let body = serde_json::json!({
            "upsince": rfc3339(self.started),
            "timestamp": rfc3339(SystemTime::now()),
            "runtime": {
                "goroutines": metrics.num_alive_tasks(),
                "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
                "goversion": concat!("switchboard ", env!("CARGO_PKG_VERSION")),
            },
            "meetings": meetings,
        });
        let mut r = body.to_string().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

/// A refused socket: its outbox already holds the `disconnect` message and is
/// closed; whatever the client sends is ignored.
#[derive(Debug)]
struct Refused;

impl Handler for Refused {
    async fn on_message(&mut self, _msg: Inbound) -> Result<(), Disconnect> {
        Ok(())
    }

    fn on_close(self, _reason: &Disconnect) {}
}

fn refuse_http(status: StatusCode, reason: &'static str, body: &'static str) -> Response {
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => reason)
        .increment(1);
    text_response(status, body)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (date, time) = wire::utc_parts(secs);
    format!("{date}T{time}Z")
}

/// Reads `/ws/meeting/(\d+)/([A-Za-z0-9_-]{54})/(\d+)` at the start of
/// `path`, anything after it allowed (as the original's unanchored pattern).
/// `None` when it does not match or a number does not fit.
pub fn parse_path(path: &str) -> Option<(MeetingId, &str, i64)> {
    let rest = path.strip_prefix(WS_PREFIX)?;
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    if n == 0 || rest.as_bytes().get(n) != Some(&b'/') {
        return None;
    }
    let id: MeetingId = rest[..n].parse().ok()?;
    let rest = &rest[n + 1..];
    let key = rest.get(..54)?;
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || rest.as_bytes().get(54) != Some(&b'/')
    {
        return None;
    }
    let rest = &rest[55..];
    let n = digits(rest);
    if n == 0 {
        return None;
    }
    let first: i64 = rest[..n].parse().ok()?;
    Some((id, key, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_the_originals_pattern() {
        let key = format!("X{}", "x".repeat(53));
        let ok = |p: String| {
            parse_path(&Box::leak(p.into_boxed_str())[..]).map(|(i, k, f)| (i, k.len(), f))
        };
        assert_eq!(ok(format!("/ws/meeting/1/{key}/0")), Some((1, 54, 0)));
        assert_eq!(
            ok(format!("/ws/meeting/12/{key}/345/trailing/junk")),
            Some((12, 54, 345))
        );
        assert_eq!(ok(format!("/ws/meeting/12/{key}/7abc")), Some((12, 54, 7)));
        for bad in [
            format!("/ws/meeting/x/{key}/0"),
            format!("/ws/meeting/1/{key}x/0"),
            format!("/ws/meeting/1/{}/0", &key[1..]),
            format!("/ws/meeting/1/{}!/0", &key[1..]),
            format!("/ws/meeting/1/{key}/"),
            format!("/ws/meeting/1/{key}"),
            format!("/ws/meeting/99999999999999999999/{key}/0"),
            format!("/ws/meeting//{key}/0"),
            "/ws/meeting/".to_owned(),
        ] {
            assert_eq!(parse_path(&bad), None, "{bad}");
        }
    }
}
