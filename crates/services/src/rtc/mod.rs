//! The rtc service: WebRTC signaling between named users, a drop-in for
//! calvinqh/webrtc-signal-server.
//!
//! A user registers a name (`POST /v1/register`; kept in the [`Store`], so it
//! survives a restart) and gets it back as the `user_username` cookie
//! ([`identity`]). With that cookie a WebSocket on `/v1/connect` makes the user
//! reachable: every message `{"target","type","payload"}` goes to the target's
//! socket as `{"originator","target","type","payload"}` ([`wire`]), or the
//! sender hears `TARGET_NOT_FOUND`. The paths follow the original's routing
//! rules ([`routes`]), below the service's prefix (`/rtc` natively, the root
//! in the `signal-server` persona).
//!
//! State shared between connections goes through the core's seams, never a
//! map of this module's own, so it holds on one node and on several alike:
//! - who is online: a cluster-wide [`Presence`] claim on the name (space
//!   `rtc`) per connection, first connection wins, released by every kind of
//!   disconnect (and by the death of its node, after the liveness timeout);
//! - delivery: [`Relay`] topic `rtc:user:<name>`, to which the claimant's
//!   socket is subscribed; [`Relay::deliver_to_one`] answers how many got it,
//!   and nobody on any node is `TARGET_NOT_FOUND`;
//! - kick: every online socket is also subscribed to [`KICK_TOPIC`]; closing
//!   that topic ends them wherever they are;
//! - registered names: the [`Store`]'s [`NameStore`](switchboard_core::store::NameStore), namespace `rtc`.
//!
//! See `docs/rtc.md`. Where this differs from the original on purpose is
//! listed in `docs/compatibility.md`.

pub mod codes;
mod http_api;
pub mod identity;
pub mod limit;
mod page;
pub mod register;
pub mod routes;
mod session;
pub mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use metrics::counter;
use switchboard_core::store::Store;
use switchboard_core::{OutboxLimits, Presence, Registry, Relay};
use switchboard_edge::client_ip::TrustedProxies;
use switchboard_edge::socket::{Keepalive, SocketConfig};
use switchboard_edge::{OriginPolicy, PeerAddr};

use identity::Identities;
use limit::RateLimiter;
use routes::{Matched, Route};

/// The service name, in metrics and the connection registry.
pub const SERVICE: &str = "rtc";

/// The namespace of the service's names, in the store and in registry claims.
pub const NAMESPACE: &str = "rtc";

/// The hub topic prefix; a user's topic is this followed by the name.
pub const TOPIC_PREFIX: &str = "rtc:user:";

/// The topic every online socket subscribes to, so a kick reaches them all.
pub const KICK_TOPIC: &str = "rtc:all";

/// The hub topic through which `name`'s socket receives.
pub fn topic(name: &str) -> String {
    format!("{TOPIC_PREFIX}{name}")
}

/// Settings of the rtc service.
#[derive(Debug, Clone)]
pub struct RtcConfig {
    /// The mount prefix without a trailing slash (`""` at the root, `/rtc` natively).
    pub prefix: String,
    /// Allowed browser origins for the WebSocket (the original checks none).
    pub origins: OriginPolicy,
    /// Proxies whose `X-Forwarded-For` names the client (for the rate limit and kick).
    pub trusted_proxies: TrustedProxies,
    /// Largest inbound WebSocket message in bytes (larger: close 1009).
    pub max_message: usize,
    /// Per-connection outbox bounds (overflow: close 1013, slow consumer).
    pub outbox: OutboxLimits,
    /// Server ping period.
    pub ping_interval: Duration,
    /// Time without any inbound frame (pongs included) before close 1008.
    pub idle_timeout: Duration,
    /// Longest one socket write may take.
    pub write_timeout: Duration,
    /// End every outbound message with `\n`, as the original does.
    pub trailing_newline: bool,
    /// Unsigned (the original) or HMAC-signed cookies.
    pub identities: Identities,
    /// A token that authorizes the kick endpoint from anywhere.
    pub admin_token: Option<String>,
    /// Whether loopback clients may kick without the token.
    pub kick_from_loopback: bool,
    /// Registrations a minute per client address (0: unlimited).
    pub register_per_minute: u32,
    /// Registrations a client address may make at once before the rate applies.
    pub register_burst: u32,
    /// Serve the demo call page at `{prefix}/call`.
    pub call_page: bool,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            prefix: String::new(),
            origins: OriginPolicy::default(),
            trusted_proxies: TrustedProxies::none(),
            max_message: 64 * 1024,
            outbox: OutboxLimits::default(),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(10),
            trailing_newline: true,
            identities: Identities::unsigned(),
            admin_token: None,
            kick_from_loopback: true,
            register_per_minute: 30,
            register_burst: 10,
            call_page: true,
        }
    }
}

/// Running totals since start, for the web console.
#[derive(Debug, Default)]
pub struct RtcStats {
    /// Names registered.
    pub registrations: AtomicU64,
    /// Messages relayed to an online target.
    pub relayed: AtomicU64,
    /// Messages answered `TARGET_NOT_FOUND`.
    pub not_found: AtomicU64,
}

/// Shared state of the rtc service.
#[derive(Debug)]
pub struct Rtc {
    cfg: RtcConfig,
    relay: Relay,
    registry: Registry,
    presence: Presence,
    store: Arc<dyn Store>,
    socket: SocketConfig,
    limiter: RateLimiter,
    stats: RtcStats,
}

impl Rtc {
    /// Builds the service. `socket` supplies the shutdown token and task
    /// tracker; its per-service fields are set from `cfg`.
    pub fn new(
        cfg: RtcConfig,
        relay: Relay,
        registry: Registry,
        presence: Presence,
        store: Arc<dyn Store>,
        socket: SocketConfig,
    ) -> Arc<Self> {
        let socket = socket.for_service(
            SERVICE,
            cfg.max_message,
            Keepalive {
                ping_interval: cfg.ping_interval,
                timeout: cfg.idle_timeout,
                any_frame_resets: true,
            },
            cfg.write_timeout,
        );
        let limiter = RateLimiter::new(cfg.register_per_minute, cfg.register_burst);
        Arc::new(Rtc {
            cfg,
            relay,
            registry,
            presence,
            store,
            socket,
            limiter,
            stats: RtcStats::default(),
        })
    }

    /// The service's settings.
    pub fn config(&self) -> &RtcConfig {
        &self.cfg
    }

    /// Users online on this node.
    pub fn online(&self) -> usize {
        self.presence.held_here_count(NAMESPACE)
    }

    /// The presence seam (for tests and the console).
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Running totals for the console.
    pub fn stats(&self) -> &RtcStats {
        &self.stats
    }

    /// The axum handler for every path under the prefix.
    pub async fn handle(State(svc): State<Arc<Rtc>>, req: Request) -> Response {
        svc.dispatch(req).await
    }

    async fn dispatch(self: Arc<Self>, req: Request) -> Response {
        let path = req.uri().path();
        let rel = path.strip_prefix(&self.cfg.prefix).unwrap_or(path);
        match routes::route(req.method(), rel, self.cfg.call_page) {
            Matched::NotFound => {
                http_error("not_found");
                routes::not_found(req.method(), path)
            }
            Matched::MethodNotAllowed => {
                http_error("method");
                routes::method_not_allowed()
            }
            Matched::Route(Route::Healthcheck) => http_api::healthcheck(),
            Matched::Route(Route::Register) => self.register(req).await,
            Matched::Route(Route::User) => self.user(req.headers()).await,
            Matched::Route(Route::Connect) => self.connect(req).await,
            Matched::Route(Route::Kick) => self.kick(&req),
            Matched::Route(Route::CallPage) => page::response(&self.cfg),
        }
    }

    /// The client's address: the TCP peer, or what a trusted proxy says.
    /// `None` for unix-socket peers and for proxied requests whose client
    /// cannot be established.
    fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.extensions().get::<PeerAddr>()?.0?;
        self.cfg
            .trusted_proxies
            .resolve_headers(peer.ip(), req.headers(), false)
            .ip()
    }

    fn count_registration(&self) {
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
    }
}

fn http_error(reason: &'static str) {
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => reason)
        .increment(1);
}
