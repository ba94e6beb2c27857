//! The meetings service: member meetings with chat, moderator controls, polls
//! and a permanent archive, a drop-in for pgeu-meetingserver (the server that
//! pgeu-system's meeting page talks to).
//!
//! `GET /ws/meeting/{meeting}/{54-character key}/{highest seen id}` opens a
//! member's WebSocket ([`wire`] has the messages). Each meeting is one actor
//! ([`actor`]) that owns its state machine, its members, its running poll and
//! the poll's timer, and is the meeting's only writer: a line is stored before
//! anyone sees it. There is one actor per meeting cluster-wide, on the node
//! that holds the meeting's claim ([`remote`]); connections on that node reach
//! it through a [`MeetingHandle`] in this node's directory, connections on
//! other nodes over the bus. All meeting state lives in the actor and is
//! re-derivable from the store, so another node can take a meeting over.
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
pub mod remote;
mod session;
pub mod texts;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use metrics::counter;
use switchboard_core::store::meetings::{MeetingId, MeetingState};
use switchboard_core::store::{MeetingAdmin, MeetingStore};
use switchboard_core::{
    ClaimError, ConnId, Disconnect, Membership, NodeId, Outbox, OutboxLimits, OutboxSender,
    Presence, Registry, Relay,
};
use switchboard_edge::socket::{Ending, Handler, Inbound, Keepalive, SocketConfig};
use switchboard_edge::{PeerAddr, text_response, upgrade};

pub use handle::{MeetingHandle, MeetingStatus, MemberStatus, SendError};

use actor::{ActorConfig, Owned};
use handle::{Cmd, Join, Sink};
use remote::{ToOwner, owner_gone, owner_topic};
use session::{OwnerLink, RemoteLink, Session, Watched};

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
            outbox: OutboxLimits::default(),
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
    presence: Presence,
    membership: Arc<dyn Membership>,
    socket: SocketConfig,
    /// The actors of the meetings this node owns: where a connection finds its meeting.
    directory: Arc<Mutex<HashMap<MeetingId, MeetingHandle>>>,
    /// Held while this node claims a meeting and starts its actor.
    starting: tokio::sync::Mutex<()>,
    /// This node's member connections whose meeting another node owns: owner
    /// node and outbox, so they are dropped when that node dies.
    watched: Watched,
    started: SystemTime,
}

/// The core seams the service runs on (in process on one node, NATS on several).
#[derive(Debug, Clone)]
pub struct Seams {
    /// Delivery to this node's connections and the other nodes.
    pub relay: Relay,
    /// This node's connections.
    pub registry: Registry,
    /// Cluster-wide claims: which node owns each meeting.
    pub presence: Presence,
    /// Which nodes are alive.
    pub membership: Arc<dyn Membership>,
}

/// Where a meeting's actor runs, as this node sees it.
#[derive(Debug)]
enum Route {
    /// Here.
    Local(MeetingHandle),
    /// On another node.
    Remote(NodeId),
}

impl Meetings {
    /// Builds the service on `store` (pgeu-system's database or Switchboard's
    /// own); `admin` enables the setup API (native mode). Meetings are claimed
    /// in the cluster's presence (space [`remote::SPACE`]), so one node owns each.
    pub fn new(
        cfg: MeetingsConfig,
        store: Arc<dyn MeetingStore>,
        admin: Option<Arc<dyn MeetingAdmin>>,
        cluster: Seams,
        socket: SocketConfig,
    ) -> Arc<Self> {
        let Seams {
            relay,
            registry,
            presence,
            membership,
        } = cluster;
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
        let watched = Watched::default();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drop_cut_off_members(
                membership.departures(),
                Arc::downgrade(&watched.0),
                relay.clone(),
            ));
        }
        Arc::new(Meetings {
            cfg,
            store,
            admin,
            relay,
            registry,
            presence,
            membership,
            socket,
            directory: Arc::default(),
            starting: tokio::sync::Mutex::new(()),
            watched,
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

    /// Where meeting `id` runs: here (its actor started here if no live node
    /// holds its claim) or on another node. `Ok(None)` if the meeting does not
    /// exist or is closed (or the store cannot say).
    async fn route(&self, id: MeetingId) -> Result<Option<Route>, ClaimError> {
        if let Some(h) = self.directory().get(&id).filter(|h| !h.is_closed()) {
            return Ok(Some(Route::Local(h.clone())));
        }
        let state = match self.store.meeting_state(id).await {
            Ok(Some(s)) if s != MeetingState::Closed => s,
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::warn!(meeting = id, error = %e, "cannot read the meeting");
                return Ok(None);
            }
        };
        // One claim attempt per meeting at a time on this node.
        let _starting = self.starting.lock().await;
        if let Some(h) = self.directory().get(&id).filter(|h| !h.is_closed()) {
            return Ok(Some(Route::Local(h.clone())));
        }
        // The owner's endpoint: registered first (the claim is honoured while it
        // is open), subscribed to the owner topic once the claim is granted.
        let endpoint = self.relay.next_conn_id();
        let (inbox, inbox_rx) = Outbox::bounded(OutboxLimits::capped(
            self.cfg.queue.saturating_mul(4).max(1024),
            64 << 20,
        ));
        let registration = self
            .registry
            .register_internal(endpoint, SERVICE, inbox.clone());
        let claim = match self
            .presence
            .claim(remote::SPACE, &id.to_string(), endpoint)
            .await
        {
            Ok(c) => c,
            Err(ClaimError::Taken(h)) if h.node != self.relay.node() => {
                return Ok(Some(Route::Remote(h.node)));
            }
            Err(e) => return Err(e),
        };
        let topic = owner_topic(id);
        let subscription = self.relay.subscribe(&topic, endpoint, inbox.clone());
        if let Err(e) = self.relay.ready(&topic).await {
            tracing::warn!(meeting = id, error = %e, "cannot take commands from other nodes");
            return Err(ClaimError::Unavailable(e.to_string()));
        }
        let lost = tokio_util::sync::CancellationToken::new();
        let owned = Owned {
            presence: self.presence.clone(),
            endpoint,
            inbox,
            departures: self.membership.departures(),
            lost: lost.clone(),
            _claim: claim,
            _subscription: subscription,
            _registration: registration,
        };
        let weak = Arc::downgrade(&self.directory);
        let handle = actor::spawn(
            id,
            state,
            self.store.clone(),
            self.relay.clone(),
            Some(owned),
            ActorConfig {
                queue: self.cfg.queue,
                batch: self.cfg.batch,
                state_poll: self.cfg.state_poll,
                poll_minute: self.cfg.poll_minute,
                shutdown: self.socket.shutdown.clone(),
            },
            move || {
                if let Some(dir) = weak.upgrade() {
                    let mut dir = dir.lock().unwrap_or_else(|e| e.into_inner());
                    if dir.get(&id).is_some_and(MeetingHandle::is_closed) {
                        dir.remove(&id);
                    }
                }
            },
        );
        tokio::spawn(remote::forward(
            inbox_rx,
            handle.clone(),
            self.relay.clone(),
            lost,
        ));
        self.directory().insert(id, handle.clone());
        Ok(Some(Route::Local(handle)))
    }

    /// How long a join waits for a meeting whose owner does not answer: long
    /// enough for the membership to declare a dead owner's node dead, so the
    /// claim can be taken over.
    fn takeover_wait(&self) -> Duration {
        self.membership.liveness_timeout() + Duration::from_secs(2)
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
        let conn = self.relay.next_conn_id();
        let deadline = tokio::time::Instant::now() + self.takeover_wait();
        // A member of a meeting owned elsewhere: its frames come on its own topic.
        let mut topic = None;
        let owner = loop {
            match self.route(id).await {
                Ok(None) => {
                    actor::refuse(&tx, texts::CLOSED);
                    return upgrade::accept(req, self.socket.clone(), rx, Refused);
                }
                Ok(Some(Route::Local(meeting))) => {
                    let join = Join {
                        member: member.clone(),
                        conn,
                        sink: Sink::Local(tx.clone()),
                        first,
                        remote: remote.clone(),
                    };
                    // Queued before the 101: a completed handshake means the join is on its way.
                    if meeting.send(Cmd::Join(Box::new(join))).await.is_err() {
                        actor::refuse(&tx, texts::CLOSED);
                        return upgrade::accept(req, self.socket.clone(), rx, Refused);
                    }
                    break OwnerLink::Local(meeting);
                }
                Ok(Some(Route::Remote(node))) => {
                    if topic.is_none() {
                        let t = remote::connection_topic(conn);
                        let sub = self.relay.subscribe(&t, conn, tx.clone());
                        if let Err(e) = self.relay.ready(&t).await {
                            tracing::warn!(meeting = id, error = %e, "cluster bus not ready; refusing a member");
                            return owner_unreachable();
                        }
                        topic = Some(sub);
                    }
                    // Watched before the join leaves: if the owner dies right after
                    // taking it, this connection is dropped with the others.
                    let watch = self.watched.watch(conn, node, tx.clone());
                    let join = ToOwner::join(&member, conn, first, &remote).frame();
                    match self.relay.deliver_to_one(&owner_topic(id), join).await {
                        Ok(n) if n > 0 => match topic.take() {
                            Some(sub) => {
                                break OwnerLink::Remote(RemoteLink {
                                    meeting: id,
                                    relay: self.relay.clone(),
                                    _topic: sub,
                                    _watch: watch,
                                });
                            }
                            None => return owner_unreachable(),
                        },
                        // Nobody took it: the owner is gone (or just stopped);
                        // once its node is declared dead the claim can be taken.
                        Ok(_) if tokio::time::Instant::now() < deadline => {
                            // Not watched while waiting: the departure it waits
                            // for must not end this connection.
                            drop(watch);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(_) => return owner_unreachable(),
                        Err(e) => {
                            tracing::warn!(meeting = id, error = %e, "cannot reach the meeting's owner");
                            return owner_unreachable();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(meeting = id, error = %e, "cannot claim the meeting");
                    return owner_unreachable();
                }
            }
        };
        let registration = self.registry.register(conn, SERVICE, tx.clone());
        tracing::debug!(meeting = id, key_id = member.key_id, %conn, "member connecting");
        let session = Session {
            meeting: id,
            owner,
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

/// The meeting's owner cannot be reached or claimed: 503 before the upgrade
/// (the page sees 1006 and tries again in two seconds).
fn owner_unreachable() -> Response {
    refuse_http(
        StatusCode::SERVICE_UNAVAILABLE,
        "owner",
        "503 the meeting cannot be reached now; try again\n",
    )
}

/// Drops the watched connections (members of meetings owned elsewhere) that
/// can no longer hear their owner: those whose owner's node died, and all of
/// them while this node's bus is disconnected. No `disconnect` line: their
/// pages reconnect (503 until the owner can be reached) and replay what they
/// missed, instead of sitting in a meeting that no longer reaches them.
async fn drop_cut_off_members(
    mut departures: tokio::sync::broadcast::Receiver<NodeId>,
    watched: Weak<Mutex<HashMap<ConnId, (NodeId, OutboxSender)>>>,
    relay: Relay,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Some(node): that node's meetings; None: every meeting owned elsewhere.
        let which = tokio::select! {
            r = departures.recv() => match r {
                Ok(n) => Some(n),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if relay.bus().health().connected {
                    if watched.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
                None
            }
        };
        let Some(w) = watched.upgrade() else { return };
        let ended: Vec<OutboxSender> = w
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(owner, o)| which.is_none_or(|n| *owner == n) && !o.is_closed())
            .map(|(_, o)| o.clone())
            .collect();
        if !ended.is_empty() {
            match which {
                Some(node) => {
                    tracing::info!(node = %node, members = ended.len(), "a meeting owner's node died: dropping its members here")
                }
                None => tracing::warn!(
                    members = ended.len(),
                    "cluster bus disconnected: dropping the members of meetings owned elsewhere"
                ),
            }
        }
        for o in ended {
            o.close(owner_gone());
        }
    }
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
