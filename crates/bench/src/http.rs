//! A minimal HTTP/1.1 keep-alive client for publishing by `POST`.
//!
//! One [`PostConn`] is one TCP connection that sends one request at a time
//! and reads the whole reply before the next, so the server accepts its
//! messages in the order they were sent. Only what publishing needs is
//! implemented: `Content-Length` bodies in both directions, no chunked
//! replies, no redirects.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::{Dialer, NetError};

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Opening the connection failed.
    #[error(transparent)]
    Dial(#[from] NetError),
    /// Reading or writing failed.
    #[error("post i/o")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a complete reply.
    #[error("post: connection closed")]
    Closed,
    /// The reply is not valid HTTP/1.x.
    #[error("post: bad reply: {0}")]
    Parse(String),
    /// The reply's status was not 200.
    #[error("post: status {0}")]
    Status(u16),
    /// No reply in time.
    #[error("post: timed out")]
    Timeout,
}

impl HttpError {
    /// A short, stable label for counting errors by kind.
    pub fn label(&self) -> String {
        match self {
            HttpError::Dial(e) => e.label(),
            HttpError::Io(e) => format!("post: {}", crate::net::io_kind(e)),
            HttpError::Closed => "post: closed".to_owned(),
            HttpError::Parse(_) => "post: bad reply".to_owned(),
            HttpError::Status(code) => format!("post: status {code}"),
            HttpError::Timeout => "post: timeout".to_owned(),
        }
    }
}

/// A keep-alive connection that POSTs bodies.
#[derive(Debug)]
pub struct PostConn {
    stream: TcpStream,
    authority: String,
    request: Vec<u8>,
    reply: Vec<u8>,
    timeout: Duration,
}

const MAX_REPLY_HEAD: usize = 16 * 1024;

impl PostConn {
    /// Connects through `dialer`; requests carry `Host: authority`, and
    /// each exchange must finish within `timeout`.
    pub async fn connect(
        dialer: &Dialer,
        authority: &str,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let stream = tokio::time::timeout(timeout, dialer.tcp())
            .await
            .map_err(|_| HttpError::Timeout)??;
        Ok(Self {
            stream,
            authority: authority.to_owned(),
            request: Vec::new(),
            reply: Vec::with_capacity(512),
            timeout,
        })
    }

    /// POSTs `body` to `path` and waits for a `200` reply, whose body is
    /// discarded.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> Result<(), HttpError> {
        use std::io::Write as _;
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            self.authority,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        let exchange = async {
            self.stream.write_all(&self.request).await?;
            read_reply(&mut self.stream, &mut self.reply).await
        };
        let status = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout)??;
        if status == 200 {
            Ok(())
        } else {
            Err(HttpError::Status(status))
        }
    }
}

/// Reads one reply (head and `Content-Length` body) and returns its status.
/// Bytes past the reply would belong to a reply we did not ask for, so they
/// are an error.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16, HttpError> {
    buf.clear();
    loop {
        if let Some((status, total)) = parse_reply(buf)? {
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            if buf.len() > total {
                return Err(HttpError::Parse(
                    "unexpected bytes after the reply".to_owned(),
                ));
            }
            return Ok(status);
        }
        if buf.len() > MAX_REPLY_HEAD {
            return Err(HttpError::Parse("reply head too long".to_owned()));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), HttpError> {
    buf.reserve(1024);
    match stream.read_buf(buf).await? {
        0 => Err(HttpError::Closed),
        _ => Ok(()),
    }
}

/// Parses a reply head; returns the status and the length of head plus body
/// once the head is complete.
fn parse_reply(buf: &[u8]) -> Result<Option<(u16, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut reply = httparse::Response::new(&mut headers);
    let head_len = match reply.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Parse(e.to_string())),
    };
    let status = reply.code.unwrap_or(0);
    let mut body_len = 0usize;
    for header in reply.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| HttpError::Parse("bad content-length".to_owned()))?;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Parse(
                "chunked replies are not supported".to_owned(),
            ));
        }
    }
    Ok(Some((status, head_len + body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nOK\n";
        assert_eq!(parse_reply(ok).unwrap(), Some((200, ok.len())));
        assert_eq!(parse_reply(&ok[..20]).unwrap(), None);
        let no_body = b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_reply(no_body).unwrap(), Some((405, no_body.len())));
        assert!(matches!(
            parse_reply(b"garbage\r\n\r\n"),
            Err(HttpError::Parse(_))
        ));
    }

    #[tokio::test]
    async fn posts_over_keep_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 4096];
            for _ in 0..2 {
                let n = socket.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8(buf[..n].to_vec()).unwrap());
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOK\n")
                    .await
                    .unwrap();
            }
            seen
        });
        let target = crate::net::Target::resolve(&format!("ws://{addr}/chan"))
            .await
            .unwrap();
        let dialer = Dialer::new(&target, 1, Duration::from_secs(5));
        let mut conn = PostConn::connect(&dialer, target.authority(), Duration::from_secs(5))
            .await
            .unwrap();
        conn.post(target.path(), b"hello").await.unwrap();
        conn.post(target.path(), b"again").await.unwrap();
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with("POST /chan HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(
            seen[0].contains("Content-Length: 5\r\n\r\nhello"),
            "{}",
            seen[0]
        );
        assert!(seen[1].ends_with("\r\n\r\nagain"));
    }
}
