//! Switchboard's network edge: listeners, the WebSocket handshake, the
//! per-socket runtime, the Origin policy and client addresses behind proxies.
//!
//! No service protocol lives here; services use these pieces from their routers.

pub mod backoff;
pub mod client_ip;
pub mod conn;
pub mod limits;
pub mod listener;
pub mod origin;
pub mod socket;
pub mod tls;
pub mod upgrade;

pub use limits::{ConnectionCap, HttpTimeouts, PerIp};
pub use listener::{Bound, ListenAddr, PeerAddr, ServeOptions};
pub use origin::OriginPolicy;
pub use socket::{Ending, Handler, Inbound, Keepalive, SocketConfig};

use http::{HeaderValue, Response, StatusCode, header};

/// A plain-text response with `nosniff`, the shape of every error the edge writes.
pub fn text_response<B: From<String>>(status: StatusCode, body: impl Into<String>) -> Response<B> {
    let mut r = Response::new(B::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
