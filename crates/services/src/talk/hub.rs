//! The Talk hub: one actor that owns every session, connection and room of
//! this node, reached through a cheap [`HubHandle`] (a bounded command
//! channel). It never awaits a client or the network: frames are pushed into
//! outboxes, and calls to Nextcloud run in tasks that report back with a
//! command. Timers (hello timeout, resume window) are tasks that send a
//! command too, carrying a generation number so a stale one is ignored.
//!
//! A *session* (the Talk meaning: public and private id, user, room) outlives
//! its *connection* (one socket): when the socket goes, the session is
//! detached and queues what is sent to it (at most `detached_queue`
//! messages, then it ends, counted) until a `hello` with its resume id
//! attaches a new connection within the resume window, or the window ends it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use metrics::{counter, gauge};
use serde_json::value::RawValue;
use switchboard_core::{ConnId, Disconnect, Frame, OutboxSender};
use tokio::sync::{mpsc, oneshot};

use super::api::{ApiError, RoomRequestBody};
use super::backend::{Backend, BackendClient, Backends};
use super::capabilities::{self, CapabilitiesCache};
use super::errors::ClientError;
use super::wire::{self, Body, ClientMessage, Hello, Raw};

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The configured Nextcloud backends.
    pub backends: Backends,
    /// How long a new connection has to say `hello` (and again after a failed one).
    pub hello_timeout: Duration,
    /// How long a session without a connection can be resumed.
    pub resume_window: Duration,
    /// Messages queued for a session without a connection before it ends.
    pub detached_queue: usize,
    /// Features in `welcome` and `hello.server`.
    pub features: &'static [&'static str],
    /// Our `version` in `welcome` and `hello.server`.
    pub version: &'static str,
}

/// Running totals and gauges for the console.
#[derive(Debug, Default)]
pub struct TalkStats {
    /// Sessions alive (attached or waiting for a resume).
    pub sessions: AtomicU64,
    /// Rooms with at least one session.
    pub rooms: AtomicU64,
    /// Messages relayed (one per recipient).
    pub relayed: AtomicU64,
}

/// A command to the hub.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A socket was accepted; its outbox already holds the welcome.
    Connect { conn: ConnId, outbox: OutboxSender },
    /// A checked client message.
    Message { conn: ConnId, msg: ClientMessage },
    /// The socket ended.
    Disconnected { conn: ConnId },
    /// The hello timer of a connection fired.
    HelloTimeout { conn: ConnId, generation: u64 },
    /// Nextcloud answered an auth request.
    Authenticated {
        conn: ConnId,
        id: Option<String>,
        hello: Box<Hello>,
        backend: Arc<Backend>,
        result: Result<AuthOk, ClientError>,
    },
    /// Nextcloud answered a room join.
    Joined {
        sid: u64,
        id: Option<String>,
        roomid: String,
        nc_session: String,
        result: Result<JoinOk, ClientError>,
    },
    /// The resume window of a detached session ended.
    Expire { sid: u64, generation: u64 },
    /// A signed request of the server API.
    Room {
        backend: Arc<Backend>,
        roomid: String,
        request: Box<RoomRequestBody>,
        done: oneshot::Sender<Result<(), ApiError>>,
    },
}

/// A successful authentication.
#[derive(Debug)]
pub(crate) struct AuthOk {
    pub(crate) userid: String,
    pub(crate) user: Option<Raw>,
}

/// A successful room join.
#[derive(Debug)]
pub(crate) struct JoinOk {
    pub(crate) properties: Option<Raw>,
    pub(crate) permissions: Vec<String>,
}

/// The cheap handle to the hub.
#[derive(Debug, Clone)]
pub struct HubHandle {
    tx: mpsc::Sender<Cmd>,
    stats: Arc<TalkStats>,
}

impl HubHandle {
    pub(crate) async fn send(&self, cmd: Cmd) {
        // Fails only when the hub is gone (shutdown); nothing to do then.
        let _ = self.tx.send(cmd).await;
    }

    pub(crate) fn send_soon(&self, cmd: Cmd) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }

    /// The hub's counters.
    pub fn stats(&self) -> &TalkStats {
        &self.stats
    }
}

/// Starts the hub task.
pub fn spawn(cfg: HubConfig, client: BackendClient) -> HubHandle {
    let (tx, rx) = mpsc::channel(4096);
    let stats = Arc::new(TalkStats::default());
    let state = State {
        cfg: Arc::new(cfg),
        client,
        capabilities: CapabilitiesCache::new(Duration::from_secs(10), capabilities::MIN_TTL),
        tx: tx.downgrade(),
        stats: stats.clone(),
        conns: HashMap::new(),
        sessions: HashMap::new(),
        by_public: HashMap::new(),
        by_private: HashMap::new(),
        by_user: HashMap::new(),
        by_nc: HashMap::new(),
        rooms: HashMap::new(),
        next_sid: 1,
        doomed: Vec::new(),
    };
    tokio::spawn(state.run(rx));
    HubHandle { tx, stats }
}

pub(super) struct Conn {
    pub(super) outbox: OutboxSender,
    pub(super) session: Option<u64>,
    hello_generation: u64,
}

pub(super) struct Session {
    pub(super) public: Arc<str>,
    private: String,
    pub(super) backend: Arc<Backend>,
    pub(super) base: String,
    pub(super) userid: String,
    pub(super) user: Option<Raw>,
    pub(super) features: Vec<String>,
    pub(super) conn: Option<ConnId>,
    queue: VecDeque<Bytes>,
    generation: u64,
    pub(super) room: Option<String>,
    pub(super) nc_session: String,
    pub(super) permissions: Vec<String>,
    pub(super) in_call: i64,
}

pub(super) struct Room {
    /// Members in join order.
    pub(super) members: Vec<u64>,
    pub(super) properties: Option<Raw>,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The client said `bye`.
    Bye,
    /// Not resumed within the window.
    Expired,
    /// Its Nextcloud session joined through another signaling session.
    Duplicate,
    /// Too much queued while detached.
    QueueFull,
    /// Disinvited from (or its room deleted while in) the room.
    Disinvited,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Bye => "bye",
            End::Expired => "expired",
            End::Duplicate => "room_session_reconnected",
            End::QueueFull => "queue_full",
            End::Disinvited => "disinvited",
        }
    }
}

pub(super) struct State {
    pub(super) cfg: Arc<HubConfig>,
    pub(super) client: BackendClient,
    /// Backends' capabilities (the hello v2 key), fetched from tasks.
    capabilities: CapabilitiesCache,
    tx: mpsc::WeakSender<Cmd>,
    pub(super) stats: Arc<TalkStats>,
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) sessions: HashMap<u64, Session>,
    pub(super) by_public: HashMap<Arc<str>, u64>,
    by_private: HashMap<String, u64>,
    pub(super) by_user: HashMap<(String, String), BTreeSet<u64>>,
    pub(super) by_nc: HashMap<(String, String), u64>,
    pub(super) rooms: HashMap<(String, String), Room>,
    next_sid: u64,
    /// Sessions to end once the current command is done (found while delivering).
    pub(super) doomed: Vec<(u64, End)>,
}

/// A counted client error.
pub(super) fn error_frame(id: Option<&str>, e: &ClientError, details: Option<&RawValue>) -> Bytes {
    counter!("switchboard_talk_errors_total", "code" => e.label()).increment(1);
    wire::error(id, e, details)
}

/// An id of 32 random bytes, base64url without padding.
fn random_id() -> String {
    use base64::Engine as _;
    use rand::Rng as _;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl State {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd);
            while let Some((sid, why)) = self.doomed.pop() {
                self.end_session(sid, why);
            }
            self.stats
                .sessions
                .store(self.sessions.len() as u64, Ordering::Relaxed);
            self.stats
                .rooms
                .store(self.rooms.len() as u64, Ordering::Relaxed);
            gauge!("switchboard_talk_sessions").set(self.sessions.len() as f64);
            gauge!("switchboard_talk_rooms").set(self.rooms.len() as f64);
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect { conn, outbox } => {
                self.conns.insert(
                    conn,
                    Conn {
                        outbox,
                        session: None,
                        hello_generation: 0,
                    },
                );
                self.arm_hello_timer(conn);
            }
            Cmd::Message { conn, msg } => self.on_message(conn, msg),
            Cmd::Disconnected { conn } => self.on_disconnected(conn),
            Cmd::HelloTimeout { conn, generation } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.session.is_none() && c.hello_generation == generation {
                    counter!("switchboard_talk_errors_total", "code" => "hello_timeout")
                        .increment(1);
                    let _ = c
                        .outbox
                        .push(Frame::Text(wire::bye(None, Some("hello_timeout"))));
                    c.outbox
                        .close(Disconnect::service(1000, "", "hello_timeout"));
                }
            }
            Cmd::Authenticated {
                conn,
                id,
                hello,
                backend,
                result,
            } => self.on_authenticated(conn, id, *hello, backend, result),
            Cmd::Joined {
                sid,
                id,
                roomid,
                nc_session,
                result,
            } => self.on_joined(sid, id, roomid, nc_session, result),
            Cmd::Expire { sid, generation } => {
                let expired = self
                    .sessions
                    .get(&sid)
                    .is_some_and(|s| s.conn.is_none() && s.generation == generation);
                if expired {
                    self.end_session(sid, End::Expired);
                }
            }
            Cmd::Room {
                backend,
                roomid,
                request,
                done,
            } => {
                let r = self.backend_request(&backend, &roomid, *request);
                let _ = done.send(r);
            }
        }
    }

    /// Runs `fut` in a task that reports back to the hub with its result.
    pub(super) fn spawn_reporting<F>(&self, fut: F)
    where
        F: Future<Output = Option<Cmd>> + Send + 'static,
    {
        let Some(tx) = self.tx.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            if let Some(cmd) = fut.await {
                let _ = tx.send(cmd).await;
            }
        });
    }

    fn arm_hello_timer(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.hello_generation += 1;
        let generation = c.hello_generation;
        let after = self.cfg.hello_timeout;
        self.spawn_reporting(async move {
            tokio::time::sleep(after).await;
            Some(Cmd::HelloTimeout { conn, generation })
        });
    }

    /// Pushes `frame` to connection `conn` (if it is still there).
    pub(super) fn reply(&self, conn: ConnId, frame: Bytes) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.outbox.push(Frame::Text(frame));
        }
    }

    /// Sends `frame` to session `sid`: to its socket, or into its queue while
    /// it has none (or its socket is ending).
    pub(super) fn deliver(&mut self, sid: u64, frame: Bytes) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(c) = s.conn.and_then(|c| self.conns.get(&c))
            && c.outbox.push(Frame::Text(frame.clone())).is_ok()
        {
            return;
        }
        s.queue.push_back(frame);
        if s.queue.len() > self.cfg.detached_queue && !self.doomed.iter().any(|(d, _)| *d == sid) {
            self.doomed.push((sid, End::QueueFull));
        }
    }

    fn on_message(&mut self, conn: ConnId, msg: ClientMessage) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let id = msg.id.as_deref();
        let Some(sid) = c.session else {
            match msg.body {
                Body::Hello(h) => self.on_hello(conn, msg.id, h),
                _ => self.reply(conn, error_frame(id, &ClientError::HelloExpected, None)),
            }
            return;
        };
        match msg.body {
            // A second hello on an authenticated connection is ignored.
            Body::Hello(_) => {}
            Body::Bye => {
                self.reply(conn, wire::bye(id, None));
                self.end_session(sid, End::Bye);
            }
            Body::Room(r) => self.on_room(sid, msg.id, r),
            Body::Message(r) => self.relay(sid, "message", r),
            Body::Control(r) => {
                let allowed = self
                    .sessions
                    .get(&sid)
                    .is_some_and(|s| s.permissions.iter().any(|p| p == "control"));
                if allowed {
                    self.relay(sid, "control", r);
                }
            }
            Body::Other(kind) => {
                tracing::debug!(kind = %kind, "talk: ignoring a message type this server does not handle");
            }
        }
    }

    fn on_hello(&mut self, conn: ConnId, id: Option<String>, hello: Hello) {
        if !hello.resumeid.is_empty() {
            self.on_resume(conn, id.as_deref(), &hello.resumeid);
            return;
        }
        let refuse = |state: &mut State, e: ClientError| {
            state.reply(conn, error_frame(id.as_deref(), &e, None));
            state.arm_hello_timer(conn);
        };
        if hello.version != "1.0" && hello.version != "2.0" {
            return refuse(self, ClientError::InvalidHelloVersion);
        }
        let Some(auth) = hello.auth.as_ref() else {
            return refuse(self, ClientError::InvalidFormat);
        };
        if auth.kind != "client" {
            // Internal and federated clients are not built yet.
            return refuse(self, ClientError::InvalidClientType);
        }
        let Some(backend) = self.cfg.backends.for_url(&auth.url) else {
            tracing::info!(url = %auth.url, "talk: hello names a backend that is not configured");
            return refuse(self, ClientError::InvalidBackend);
        };
        // No hello timeout while Nextcloud is being asked.
        if let Some(c) = self.conns.get_mut(&conn) {
            c.hello_generation += 1;
        }
        if hello.version == "2.0" {
            return self.hello_v2(conn, id, hello, backend);
        }
        let params = auth
            .params
            .as_deref()
            .map_or("{}".to_owned(), |p| p.get().to_owned());
        let body = format!(r#"{{"type":"auth","auth":{{"version":"1.0","params":{params}}}}}"#);
        let client = self.client.clone();
        let base = auth.url.clone();
        self.spawn_reporting(async move {
            let result = match client.call(&backend, &base, body.into_bytes()).await {
                Err(e) => Err(ClientError::Internal(e.to_string())),
                Ok(data) => parse_auth(&data),
            };
            Some(Cmd::Authenticated {
                conn,
                id,
                hello: Box::new(hello),
                backend,
                result,
            })
        });
    }

    /// Hello v2: the token in `auth.params.token` is checked in a task with
    /// the key from the backend's capabilities; no call to Nextcloud's
    /// signaling endpoint.
    fn hello_v2(&mut self, conn: ConnId, id: Option<String>, hello: Hello, backend: Arc<Backend>) {
        #[derive(serde::Deserialize)]
        struct Params {
            #[serde(default)]
            token: String,
        }
        let token = hello
            .auth
            .as_ref()
            .and_then(|a| a.params.as_deref())
            .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
            .map(|p| p.token)
            .unwrap_or_default();
        let base = hello
            .auth
            .as_ref()
            .map(|a| a.url.clone())
            .unwrap_or_default();
        let caps = self.capabilities.clone();
        self.spawn_reporting(async move {
            let result = match caps.hello_v2_key(&base).await {
                Err(e) => Err(ClientError::Internal(e.to_string())),
                Ok(key) => check_token(&token, key.as_deref()),
            };
            Some(Cmd::Authenticated {
                conn,
                id,
                hello: Box::new(hello),
                backend,
                result,
            })
        });
    }

    fn on_authenticated(
        &mut self,
        conn: ConnId,
        id: Option<String>,
        hello: Hello,
        backend: Arc<Backend>,
        result: Result<AuthOk, ClientError>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.session.is_some() {
            return;
        }
        let ok = match result {
            Ok(ok) => ok,
            Err(e) => {
                self.reply(conn, error_frame(id.as_deref(), &e, None));
                self.arm_hello_timer(conn);
                return;
            }
        };
        let sid = self.next_sid;
        self.next_sid += 1;
        let public: Arc<str> = random_id().into();
        let private = random_id();
        let base = hello.auth.map(|a| a.url).unwrap_or_default();
        let session = Session {
            public: public.clone(),
            private: private.clone(),
            backend: backend.clone(),
            base,
            userid: ok.userid,
            user: ok.user,
            features: hello.features,
            conn: Some(conn),
            queue: VecDeque::new(),
            generation: 0,
            room: None,
            nc_session: String::new(),
            permissions: Vec::new(),
            in_call: 0,
        };
        if !session.userid.is_empty() {
            self.by_user
                .entry((backend.id.clone(), session.userid.clone()))
                .or_default()
                .insert(sid);
        }
        self.by_public.insert(public, sid);
        self.by_private.insert(private, sid);
        self.sessions.insert(sid, session);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(sid);
        }
        counter!("switchboard_talk_hellos_total", "outcome" => "new").increment(1);
        self.send_hello_reply(sid, conn, id.as_deref());
    }

    fn send_hello_reply(&self, sid: u64, conn: ConnId, id: Option<&str>) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let reply = wire::HelloReply {
            version: "1.0",
            sessionid: &s.public,
            resumeid: &s.private,
            userid: &s.userid,
            server: wire::Welcome {
                version: self.cfg.version,
                features: self.cfg.features,
            },
        };
        self.reply(conn, wire::frame(id, "hello", Some(&reply)));
    }

    fn on_resume(&mut self, conn: ConnId, id: Option<&str>, resumeid: &str) {
        let Some(&sid) = self.by_private.get(resumeid) else {
            counter!("switchboard_talk_hellos_total", "outcome" => "no_such_session").increment(1);
            self.reply(conn, error_frame(id, &ClientError::NoSuchSession, None));
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let previous = s.conn.replace(conn);
        s.generation += 1;
        let queued: Vec<Bytes> = s.queue.drain(..).collect();
        if let Some(old) = previous.filter(|old| *old != conn)
            && let Some(c) = self.conns.get_mut(&old)
        {
            c.session = None;
            let _ = c
                .outbox
                .push(Frame::Text(wire::bye(None, Some("session_resumed"))));
            c.outbox
                .close(Disconnect::service(1000, "", "session_resumed"));
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(sid);
            c.hello_generation += 1;
        }
        counter!("switchboard_talk_hellos_total", "outcome" => "resumed").increment(1);
        self.send_hello_reply(sid, conn, id);
        for frame in queued {
            self.deliver(sid, frame);
        }
    }

    fn on_disconnected(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(sid) = c.session else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.conn != Some(conn) {
            return;
        }
        s.conn = None;
        s.generation += 1;
        let generation = s.generation;
        let after = self.cfg.resume_window;
        self.spawn_reporting(async move {
            tokio::time::sleep(after).await;
            Some(Cmd::Expire { sid, generation })
        });
    }

    /// Ends a session: leaves its room (telling Nextcloud unless it was
    /// replaced by a duplicate), forgets it, and closes its socket.
    pub(super) fn end_session(&mut self, sid: u64, why: End) {
        if !self.sessions.contains_key(&sid) {
            return;
        }
        self.leave_room(sid, why != End::Duplicate, why != End::Duplicate);
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        counter!("switchboard_talk_sessions_ended_total", "reason" => why.label()).increment(1);
        self.by_public.remove(&s.public);
        self.by_private.remove(&s.private);
        let key = (s.backend.id.clone(), s.userid.clone());
        if let Some(set) = self.by_user.get_mut(&key) {
            set.remove(&sid);
            if set.is_empty() {
                self.by_user.remove(&key);
            }
        }
        if let Some(c) = s.conn.and_then(|c| self.conns.get_mut(&c)) {
            c.session = None;
            c.outbox.close(Disconnect::service(1000, "", why.label()));
        }
    }
}

/// Checks a hello v2 token with the backend's published key (none, or one
/// we can not read: every token is invalid).
fn check_token(token: &str, key: Option<&str>) -> Result<AuthOk, ClientError> {
    use super::jwt::{self, TokenError, TokenKey};
    let key = key
        .ok_or(ClientError::Token(TokenError::Malformed))
        .and_then(|k| {
            TokenKey::parse(k).map_err(|e| {
                tracing::warn!(error = %e, "talk: the backend's hello-v2-token-key is unusable");
                ClientError::Token(TokenError::Malformed)
            })
        })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let claims = jwt::verify(token, &key, now).map_err(ClientError::Token)?;
    Ok(AuthOk {
        userid: claims.user_id,
        user: claims.user_data,
    })
}

fn parse_auth(data: &RawValue) -> Result<AuthOk, ClientError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(default)]
        auth: Option<AuthBody>,
        #[serde(default)]
        error: Option<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct AuthBody {
        #[serde(default)]
        userid: String,
        #[serde(default)]
        user: Option<Raw>,
    }
    let reply: Reply = serde_json::from_str(data.get()).map_err(|_| ClientError::AuthFailed)?;
    match (reply.kind.as_str(), reply.auth, reply.error) {
        ("auth", Some(a), _) => Ok(AuthOk {
            userid: a.userid,
            user: a.user,
        }),
        ("error", _, Some(e)) => Err(e.into()),
        _ => Err(ClientError::AuthFailed),
    }
}

/// Nextcloud's `{"code","message"}`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl From<ErrorBody> for ClientError {
    fn from(e: ErrorBody) -> Self {
        ClientError::Backend {
            code: e.code,
            message: e.message,
        }
    }
}
