//! The WebSocket opening handshake on a hyper connection.
//!
//! A service's HTTP handler decides whether to accept (status codes before the
//! 101 are its business), registers the new connection (invariant 4: subscribed
//! before the 101 is sent), and then calls [`accept`], which answers 101 and
//! runs the socket on hyper's upgraded stream with [`crate::socket::run`].

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_websockets::{Limits, ServerBuilder};

use crate::socket::{Handler, SocketConfig};
use crate::text_response;
use switchboard_core::OutboxReceiver;

/// Whether the request asks for a WebSocket upgrade: `Connection` contains
/// `upgrade` and `Upgrade` contains `websocket`, case-insensitively.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    fn contains(headers: &HeaderMap, name: header::HeaderName, needle: &str) -> bool {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.to_ascii_lowercase().contains(needle))
        })
    }
    contains(headers, header::CONNECTION, "upgrade")
        && contains(headers, header::UPGRADE, "websocket")
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// Why a handshake was refused before the 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not a GET.
    #[error("WebSocket upgrade must use GET")]
    Method,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported WebSocket version (need 13)")]
    Version,
    /// `Sec-WebSocket-Key` is missing.
    #[error("missing Sec-WebSocket-Key")]
    Key,
    /// `Sec-WebSocket-Key` is not the base64 form of 16 bytes (RFC 6455 §4.2.1).
    #[error("invalid Sec-WebSocket-Key: must be base64 of 16 bytes")]
    KeyInvalid,
    /// The server is shutting down and takes no new sockets.
    #[error("server shutting down")]
    ShuttingDown,
}

impl HandshakeError {
    /// The HTTP response for this refusal.
    pub fn response<B: From<String>>(&self) -> Response<B> {
        let status = match self {
            HandshakeError::Method => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeError::Version | HandshakeError::Key | HandshakeError::KeyInvalid => {
                StatusCode::BAD_REQUEST
            }
            HandshakeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut r = text_response(status, format!("{self}\n"));
        if *self == HandshakeError::Version {
            r.headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        r
    }
}

/// Checks the handshake headers of `req` without consuming it.
pub fn check<B>(req: &Request<B>, cfg: &SocketConfig) -> Result<(), HandshakeError> {
    if cfg.shutdown.is_cancelled() {
        return Err(HandshakeError::ShuttingDown);
    }
    if req.method() != http::Method::GET {
        return Err(HandshakeError::Method);
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeError::Version);
    }
    match req.headers().get(header::SEC_WEBSOCKET_KEY) {
        None => Err(HandshakeError::Key),
        Some(key) if !is_valid_key(key.as_bytes()) => Err(HandshakeError::KeyInvalid),
        Some(_) => Ok(()),
    }
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: the padded base64 form of
/// exactly 16 bytes (so 24 characters; RFC 6455 §4.2.1 item 5).
pub fn is_valid_key(key: &[u8]) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|raw| raw.len() == 16)
}

/// Answers `req` with 101 and runs the socket with `handler` and `outbox` once
/// hyper hands over the stream. Call [`check`] first; this re-checks and
/// refuses with the same errors.
pub fn accept<B, H>(
    mut req: Request<B>,
    cfg: SocketConfig,
    outbox: OutboxReceiver,
    handler: H,
) -> Response<axum::body::Body>
where
    H: Handler,
{
    if let Err(e) = check(&req, &cfg) {
        return e.response();
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return HandshakeError::Key.response();
    };
    let accept = accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tracker = cfg.tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = ServerBuilder::new()
                    .limits(Limits::default().max_payload_len(Some(cfg.max_message)))
                    .serve(TokioIo::new(upgraded));
                crate::socket::run(ws, outbox, handler, &cfg).await;
            }
            Err(e) => {
                tracing::debug!(service = cfg.service, error = %e, "upgrade failed after 101");
                handler.on_close(&switchboard_core::Disconnect::Protocol);
            }
        }
    });
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_base64_of_16_bytes_is_a_key() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            &b""[..],
            b"dGhlIHNhbXBsZSBub25jZQ",    // unpadded
            b"dGhlIHNhbXBsZSBub25jZQ==x", // too long
            b"dGhlIHNhbXBsZSBub25jZSE=",  // 17 bytes
            b"dGhlIHNhbXBsZSBub25j!Q==",  // not base64
            &[b'A'; 4096],
        ] {
            assert!(!is_valid_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn upgrade_detection_is_case_insensitive_and_unanchored() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade_request(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_upgrade_request(&h));
    }
}
