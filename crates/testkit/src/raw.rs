//! A raw WebSocket client over a plain TCP stream, for what a well-behaved
//! client library will not do: never answer pings, stop reading, or send
//! hand-made frames.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::WAIT;

/// A frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// For a close frame: its code, if it has one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A raw WebSocket connection.
#[derive(Debug)]
pub struct RawWs {
    /// The TCP stream, after the handshake.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens `path` with a minimal handshake and checks for a 101.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        Self::connect_with(addr, path, &[], None).await
    }

    /// Like [`RawWs::connect`], with extra request headers and, optionally, a
    /// fixed receive buffer (no autotuning), so a client that stops reading
    /// pushes back on the server quickly.
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> RawWs {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .expect("write handshake");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            let n = timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake timed out")
                .expect("read handshake");
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
        let rest = buf.split_off(end);
        RawWs { stream, buf: rest }
    }

    /// Sends one masked frame with `opcode` and `payload` (FIN set).
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_fragment(opcode, payload, true).await;
    }

    /// Sends one masked frame; without `fin` it is a fragment that a
    /// continuation frame (opcode 0) must follow.
    pub async fn send_fragment(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
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
        let mask = [1u8, 2, 3, 4];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).await.expect("send frame");
    }

    /// Reads the next frame; `None` when the TCP connection ends.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        timeout(WAIT, self.read_frame_inner())
            .await
            .expect("no frame in time")
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

    async fn read_frame_inner(&mut self) -> Option<RawFrame> {
        if !self.fill(2).await {
            return None;
        }
        let opcode = self.buf[0] & 0x0F;
        let len7 = (self.buf[1] & 0x7F) as usize;
        let (len, hdr) = match len7 {
            126 => {
                if !self.fill(4).await {
                    return None;
                }
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
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
        Some(RawFrame { opcode, payload })
    }

    /// Reads frames until a close frame (returned) or the end of the stream (`None`).
    pub async fn until_close(&mut self) -> Option<RawFrame> {
        loop {
            match self.read_frame().await {
                Some(f) if f.opcode == 8 => return Some(f),
                Some(_) => continue,
                None => return None,
            }
        }
    }
}
