//! Helpers shared by the rtc integration tests: register a name, connect with
//! its cookie, send a signaling message, and a raw client that never reads
//! or answers pings (for slow-peer and timeout tests).

#![allow(dead_code, reason = "each rtc test binary uses a different subset")]

use std::net::SocketAddr;

use switchboard::Config;
use switchboard_testkit::WAIT;
use switchboard_testkit::http::{self, Response};
use switchboard_testkit::ws::{self, Client, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::harness;

/// The native mount prefix.
pub(crate) const PREFIX: &str = "/rtc";

/// The default test config (native mode, in-memory store), without the
/// registration rate limit, adjusted by `adjust`.
pub(crate) fn rtc_config(adjust: impl FnOnce(&mut Config)) -> Config {
    harness::config(|c| {
        c.rtc.register_per_minute = 0;
        adjust(c);
    })
}

/// `POST {prefix}/v1/register` with a JSON body.
pub(crate) async fn register_json(addr: SocketAddr, prefix: &str, name: &str) -> Response {
    let body = serde_json::json!({ "username": name }).to_string();
    http::request(
        addr,
        "POST",
        &format!("{prefix}/v1/register"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// Registers `name` and returns its `Cookie` header value (`user_username=…`).
pub(crate) async fn register(addr: SocketAddr, prefix: &str, name: &str) -> String {
    let r = register_json(addr, prefix, name).await;
    assert_eq!(r.status, 200, "register {name}: {}", r.text());
    assert_eq!(r.text(), r#"{"status":"SUCCESS","message":""}"#);
    cookie_of(&r)
}

/// The `name=value` part of a response's `Set-Cookie`.
pub(crate) fn cookie_of(r: &Response) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().expect("a cookie pair").to_owned()
}

/// Opens `{prefix}/v1/connect` with `cookie`.
pub(crate) async fn connect(addr: SocketAddr, prefix: &str, cookie: &str) -> Client {
    ws::try_connect(addr, &format!("{prefix}/v1/connect"), &[("Cookie", cookie)])
        .await
        .unwrap_or_else(|e| panic!("connect with {cookie}: {e}"))
}

/// Registers `name` and brings it online.
pub(crate) async fn online(addr: SocketAddr, name: &str) -> Client {
    let cookie = register(addr, PREFIX, name).await;
    connect(addr, PREFIX, &cookie).await
}

/// Sends `{"target","type","payload"}` with `payload` as raw JSON text.
pub(crate) async fn send(c: &mut Client, target: &str, kind: &str, payload: &str) {
    c.send_text(&format!(
        r#"{{"target":"{target}","type":"{kind}","payload":{payload}}}"#
    ))
    .await;
}

/// The frame `target` receives for that message from `from`.
pub(crate) fn forwarded(from: &str, target: &str, kind: &str, payload: &str) -> String {
    format!(
        "{{\"originator\":\"{from}\",\"target\":\"{target}\",\"type\":\"{kind}\",\"payload\":{payload}}}\n"
    )
}

/// What a sender hears when its target is not online.
pub(crate) const NOT_FOUND: &str =
    "{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n";

/// Expects a close frame and returns its code and reason.
pub(crate) async fn closed(c: &mut Client) -> (Option<u16>, String) {
    match c.next().await {
        Event::Close(code, reason) => (code, reason),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// A WebSocket over a bare TCP stream: sends the handshake with a cookie,
/// then reads only when told (so it can play a peer that never reads or
/// never answers pings).
#[derive(Debug)]
pub(crate) struct RawClient {
    /// The stream after the 101.
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects to `path` with `cookie` and waits for the 101.
    pub(crate) async fn connect(addr: SocketAddr, path: &str, cookie: &str) -> RawClient {
        // A small, fixed receive window (no autotuning up to tens of MiB), so
        // a client that stops reading pushes back on the server quickly.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
        let mut stream = socket.connect(addr).await.expect("tcp connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Cookie: {cookie}\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("handshake");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            let n = timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake timed out")
                .expect("read handshake");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        assert!(buf.starts_with(b"HTTP/1.1 101"), "expected a 101");
        let rest = buf.split_off(end);
        RawClient { stream, buf: rest }
    }

    /// Sends one masked frame.
    pub(crate) async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [7u8, 1, 9, 3];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).await.expect("send frame");
    }

    async fn fill(&mut self, n: usize) -> bool {
        let mut chunk = [0u8; 65536];
        while self.buf.len() < n {
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
        true
    }

    /// The next frame's opcode and payload; `None` at the end of the stream.
    pub(crate) async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        timeout(WAIT, async {
            if !self.fill(2).await {
                return None;
            }
            let opcode = self.buf[0] & 0x0F;
            let (len, hdr) = match (self.buf[1] & 0x7F) as usize {
                126 => {
                    if !self.fill(4).await {
                        return None;
                    }
                    (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    )
                }
                127 => {
                    if !self.fill(10).await {
                        return None;
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.buf[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                n => (n, 2),
            };
            if !self.fill(hdr + len).await {
                return None;
            }
            let payload = self.buf[hdr..hdr + len].to_vec();
            self.buf.drain(..hdr + len);
            Some((opcode, payload))
        })
        .await
        .expect("no frame in time")
    }

    /// Reads until a close frame; returns its code and reason.
    pub(crate) async fn until_close(&mut self) -> Option<(u16, String)> {
        while let Some((op, p)) = self.read_frame().await {
            if op == 8 && p.len() >= 2 {
                let reason = String::from_utf8_lossy(&p[2..]).into_owned();
                return Some((u16::from_be_bytes([p[0], p[1]]), reason));
            }
        }
        None
    }
}
