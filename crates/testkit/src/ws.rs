//! A WebSocket test client on tokio-websockets.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use crate::WAIT;

/// What the client saw next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A Close frame with code and reason (`None` for a close without a code).
    Close(Option<u16>, String),
    /// The TCP connection ended without a Close frame.
    Dropped,
    /// A ping from the server.
    Ping,
}

/// A connected WebSocket client.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Connects to `ws://{addr}{path}` with extra headers; returns the handshake error text on refusal.
pub async fn try_connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Client, String> {
    try_connect_with_response(addr, path, headers)
        .await
        .map(|(c, _)| c)
}

/// Like [`try_connect`], also returning the 101 response's headers (names lower-cased).
pub async fn try_connect_with_response(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, Vec<(String, String)>), String> {
    let mut b = ClientBuilder::new()
        .uri(&format!("ws://{addr}{path}"))
        .map_err(|e| e.to_string())?
        .limits(tokio_websockets::Limits::unlimited());
    for (k, v) in headers {
        b = b
            .add_header(
                http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                http::HeaderValue::from_str(v).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
    }
    let (ws, resp) = timeout(WAIT, b.connect())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok((Client { ws }, headers))
}

/// Connects to `ws://{addr}{path}`, panicking on failure.
pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    match try_connect(addr, path, &[]).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {path}: {e}"),
    }
}

impl Client {
    /// Sends a text message.
    pub async fn send_text(&mut self, s: &str) {
        self.send(Message::text(s.to_owned())).await;
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, b: &[u8]) {
        self.send(Message::binary(Bytes::copy_from_slice(b))).await;
    }

    /// Sends any message.
    pub async fn send(&mut self, m: Message) {
        if let Err(e) = timeout(WAIT, self.ws.send(m))
            .await
            .expect("send timed out")
        {
            panic!("send failed: {e}");
        }
    }

    /// Starts the close handshake with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let code = tokio_websockets::CloseCode::try_from(code).expect("valid close code");
        self.send(Message::close(Some(code), reason)).await;
    }

    /// The next event (text, binary, close, drop), skipping pings. Panics after
    /// [`WAIT`] in all (pings do not extend it).
    pub async fn next(&mut self) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(left, self.next_raw()).await {
                Err(_) => panic!("no event but pings within {WAIT:?}"),
                Ok(Event::Ping) => continue,
                Ok(e) => return e,
            }
        }
    }

    /// The next event including pings. Panics after [`WAIT`].
    pub async fn next_raw(&mut self) -> Event {
        match timeout(WAIT, self.ws.next()).await {
            Err(_) => panic!("no event within {WAIT:?}"),
            Ok(None) => Event::Dropped,
            Ok(Some(Err(_))) => Event::Dropped,
            Ok(Some(Ok(m))) => {
                if let Some((code, reason)) = m.as_close() {
                    Event::Close(Some(u16::from(code)), reason.to_owned())
                } else if m.is_close() {
                    Event::Close(None, String::new())
                } else if m.is_ping() {
                    Event::Ping
                } else if let Some(t) = m.as_text() {
                    Event::Text(t.to_owned())
                } else {
                    Event::Binary(Bytes::from(m.into_payload()))
                }
            }
        }
    }

    /// The next text message; panics on anything else.
    pub async fn text(&mut self) -> String {
        match self.next().await {
            Event::Text(t) => t,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Waits for a Close frame and returns its code and reason; panics on data or a drop.
    pub async fn closed(&mut self) -> (Option<u16>, String) {
        match self.next().await {
            Event::Close(c, r) => (c, r),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Waits until the server ends the connection, skipping data; returns the close
    /// code and reason, or `None` if the TCP connection dropped without one.
    pub async fn until_closed(&mut self) -> Option<(Option<u16>, String)> {
        loop {
            match self.next().await {
                Event::Close(c, r) => return Some((c, r)),
                Event::Dropped => return None,
                _ => continue,
            }
        }
    }

    /// Asserts that nothing arrives within `ms` milliseconds (pings aside).
    /// Used only to check a *non*-delivery, where there is no event to await.
    pub async fn expect_silence(&mut self, ms: u64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(m))) if m.is_ping() || m.is_pong() => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}
