//! The talk service: standalone signaling for Nextcloud Talk, a drop-in for
//! strukturag/nextcloud-spreed-signaling (first slice: hello v1, resume,
//! rooms with join/leave events, message/control relay, bye, and the server
//! API's room requests; see `docs/talk.md` for what is built and what not).
//!
//! - [`wire`]: the client protocol's JSON; [`errors`]: its error codes.
//! - [`backend`]: configured Nextcloud backends, the request checksum, and
//!   the client that calls Nextcloud.
//! - [`hub`]: the actor owning sessions, connections and rooms (`rooms`
//!   holds its room logic); `connection`: one socket; `api`: the HTTP API
//!   Nextcloud calls.
//!
//! Paths below the service's prefix (`/talk` natively): `/spreed` (the
//! WebSocket), `/api/v1/welcome`, `/api/v1/room/{roomid}`.

mod api;
pub mod backend;
pub mod capabilities;
mod connection;
pub mod errors;
pub mod hub;
pub mod jwt;
mod rooms;
pub mod throttle;
pub mod turn;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use metrics::counter;
use switchboard_core::{OutboxLimits, Registry, Relay};
use switchboard_edge::socket::{Keepalive, SocketConfig};
use switchboard_edge::text_response;

pub use api::{ApiError, MAX_BODY, RoomRequestBody};
pub use backend::{Backend, BackendClient, Backends};
pub use hub::{HubConfig, HubHandle, TalkStats};

/// The service name, in metrics and the connection registry.
pub const SERVICE: &str = "talk";

/// What this server offers, sorted, in `welcome`, `hello.server` and the
/// `X-Spreed-Signaling-Features` header. Only what is built: no `switchto`,
/// `federation`, `transient-data` or `mcu` yet.
pub const FEATURES: &[&str] = &[
    "audio-video-permissions",
    "hello-v2",
    "incall-all",
    "welcome",
];

/// Our `version` in `welcome`, `hello.server` and `/api/v1/welcome`.
pub const VERSION: &str = concat!("switchboard-", env!("CARGO_PKG_VERSION"));

/// Settings of the talk service.
#[derive(Debug, Clone)]
pub struct TalkConfig {
    /// The mount prefix without a trailing slash (`""` at the root, `/talk` natively).
    pub prefix: String,
    /// Largest inbound message in bytes (the original: 64 KiB; larger: close 1009).
    pub max_message: usize,
    /// Per-connection outbox bounds (overflow: close 1013, slow consumer; the session stays resumable).
    pub outbox: OutboxLimits,
    /// Server ping period (the original: 54 s).
    pub ping_interval: Duration,
    /// Time without any inbound frame before the socket is closed (the original: 60 s).
    pub read_timeout: Duration,
    /// Longest one socket write may take (the original: 10 s).
    pub write_timeout: Duration,
    /// Timeout of one request to Nextcloud (the original: 10 s).
    pub backend_timeout: Duration,
    /// Concurrent requests per Nextcloud host (the original: 8).
    pub connections_per_host: usize,
    /// Our version string.
    pub version: &'static str,
    /// The hub's settings (backends, timers, queue bound, features).
    pub hub: HubConfig,
}

impl Default for TalkConfig {
    fn default() -> Self {
        TalkConfig {
            prefix: String::new(),
            max_message: 64 * 1024,
            outbox: OutboxLimits::default(),
            ping_interval: Duration::from_secs(54),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            backend_timeout: Duration::from_secs(10),
            connections_per_host: 8,
            version: VERSION,
            hub: HubConfig {
                backends: Backends::default(),
                hello_timeout: Duration::from_secs(2),
                resume_window: Duration::from_secs(30),
                detached_queue: 256,
                features: FEATURES,
                version: VERSION,
            },
        }
    }
}

/// The talk service.
#[derive(Debug)]
pub struct Talk {
    cfg: TalkConfig,
    relay: Relay,
    registry: Registry,
    socket: SocketConfig,
    hub: HubHandle,
}

impl Talk {
    /// Builds the service and starts its hub. `socket` supplies the shutdown
    /// token and task tracker.
    pub fn new(
        cfg: TalkConfig,
        relay: Relay,
        registry: Registry,
        socket: SocketConfig,
    ) -> Arc<Self> {
        let socket = socket.for_service(
            SERVICE,
            cfg.max_message,
            Keepalive {
                ping_interval: cfg.ping_interval,
                timeout: cfg.read_timeout,
                any_frame_resets: true,
            },
            cfg.write_timeout,
        );
        let client = BackendClient::new(
            cfg.backend_timeout,
            cfg.connections_per_host,
            cfg.hub.features,
        );
        let hub = hub::spawn(cfg.hub.clone(), client);
        Arc::new(Talk {
            cfg,
            relay,
            registry,
            socket,
            hub,
        })
    }

    /// The service's settings.
    pub fn config(&self) -> &TalkConfig {
        &self.cfg
    }

    /// Counters for the console.
    pub fn stats(&self) -> &TalkStats {
        self.hub.stats()
    }

    fn features_header(&self) -> String {
        self.cfg.hub.features.join(", ")
    }

    /// The axum handler for every path under the prefix.
    pub async fn handle(State(svc): State<Arc<Talk>>, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        let rel = path.strip_prefix(svc.cfg.prefix.as_str()).unwrap_or(&path);
        let method = req.method().clone();
        if rel == "/spreed" || rel == "/api/v1/welcome" {
            if method != Method::GET {
                counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "method")
                    .increment(1);
                return text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            }
            return if rel == "/spreed" {
                svc.connect(req).await
            } else {
                svc.welcome()
            };
        }
        match rel.strip_prefix("/api/v1/room/") {
            Some(roomid)
                if method == Method::POST && !roomid.is_empty() && !roomid.contains('/') =>
            {
                let roomid = percent_encoding::percent_decode_str(roomid)
                    .decode_utf8_lossy()
                    .into_owned();
                svc.room_request(&roomid, req).await
            }
            _ => not_found(),
        }
    }
}

fn not_found() -> Response {
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "not_found")
        .increment(1);
    text_response(StatusCode::NOT_FOUND, "404 page not found\n")
}
