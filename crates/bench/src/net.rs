//! Dialing: the target URL ([`Target`]), TCP connections spread over loopback
//! source addresses ([`Dialer`]), WebSocket handshakes on them, and bounded
//! concurrent connecting ([`connect_many`]).
//!
//! One process can open only ~28k connections from one source address to one
//! server port (the ephemeral port range), so every socket is bound to the
//! next of `127.0.0.1 ..= 127.0.0.N` before it connects. Binding applies only
//! when the target itself is an IPv4 loopback address.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Uri;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_websockets::{ClientBuilder, Limits, WebSocketStream};

use crate::stats::{Latency, Tally};

/// A client WebSocket over plain TCP, as every scenario uses.
pub type WsConn = WebSocketStream<TcpStream>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The URL could not be parsed or is not a `ws://` URL with a host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name did not resolve to an address.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The host that was looked up.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// Creating or binding the socket failed.
    #[error("bind {addr}")]
    Bind {
        /// The source address.
        addr: IpAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TCP connect failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The server answered the upgrade with something other than 101.
    #[error("handshake: status {0}")]
    Status(u16),
    /// The WebSocket handshake failed otherwise.
    #[error("handshake: {0}")]
    Handshake(tokio_websockets::Error),
    /// A stage did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
}

impl NetError {
    /// A short, stable label for counting errors by kind.
    pub fn label(&self) -> String {
        match self {
            NetError::InvalidUrl { .. } => "invalid url".to_owned(),
            NetError::Resolve { .. } => "resolve".to_owned(),
            NetError::Bind { source, .. } => format!("bind: {}", io_kind(source)),
            NetError::Connect(source) => format!("connect: {}", io_kind(source)),
            NetError::Status(code) => format!("handshake: status {code}"),
            NetError::Handshake(tokio_websockets::Error::Io(source)) => {
                format!("handshake: {}", io_kind(source))
            }
            NetError::Handshake(_) => "handshake: protocol".to_owned(),
            NetError::Timeout(stage) => format!("{stage} timeout"),
        }
    }
}

/// A short label for an I/O error, without the OS error number.
pub fn io_kind(error: &std::io::Error) -> String {
    error.kind().to_string()
}

/// The server the bench talks to: a `ws://host:port/path` URL and its
/// resolved address.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    addr: SocketAddr,
    authority: String,
}

impl Target {
    /// Parses a `ws://` URL and resolves its host.
    pub async fn resolve(url: &str) -> Result<Self, NetError> {
        let invalid = |reason: &str| NetError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        if uri.scheme_str() != Some("ws") {
            return Err(invalid("only ws:// is supported"));
        }
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = match bare.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|source| NetError::Resolve {
                    host: bare.to_owned(),
                    source,
                })?
                .next()
                .ok_or_else(|| NetError::Resolve {
                    host: bare.to_owned(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?,
        };
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        Ok(Self {
            uri,
            addr,
            authority,
        })
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `host[:port]` to send in a `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The channel path (the URL path, with the query if any).
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// The WebSocket URL.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The URL of a sub-channel: this path plus `/suffix`.
    pub fn channel(&self, suffix: &str) -> Result<Uri, NetError> {
        let path = self.uri.path().trim_end_matches('/');
        let text = format!("ws://{}{path}/{suffix}", self.authority);
        text.parse()
            .map_err(|e: http::uri::InvalidUri| NetError::InvalidUrl {
                url: text.clone(),
                reason: e.to_string(),
            })
    }
}

/// Opens TCP connections to one server, round-robin over source addresses,
/// and upgrades them to WebSockets.
#[derive(Debug)]
pub struct Dialer {
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
    timeout: Duration,
    recv_buffer: Option<u32>,
}

impl Dialer {
    /// A dialer for `target` using `sources` loopback source addresses
    /// (`127.0.0.1 ..= 127.0.0.sources`; ignored unless the target is IPv4
    /// loopback) and `timeout` for connect plus handshake.
    pub fn new(target: &Target, sources: u8, timeout: Duration) -> Self {
        let addr = target.addr();
        let sources = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (1..=sources.max(1))
                .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            addr,
            sources,
            next_source: AtomicUsize::new(0),
            timeout,
            recv_buffer: None,
        }
    }

    /// Sets `SO_RCVBUF` on every socket (which turns off the kernel's
    /// receive-buffer autotuning for it); `None` keeps the default.
    pub fn with_recv_buffer(mut self, bytes: Option<u32>) -> Self {
        self.recv_buffer = bytes;
        self
    }

    /// Source addresses in use (empty: let the OS choose).
    pub fn sources(&self) -> &[IpAddr] {
        &self.sources
    }

    /// Opens a TCP connection from the next source address, with
    /// `TCP_NODELAY` set.
    pub async fn tcp(&self) -> Result<TcpStream, NetError> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let unspecified = match self.addr {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let socket = socket.map_err(|source| NetError::Bind {
            addr: unspecified,
            source,
        })?;
        if let Some(bytes) = self.recv_buffer {
            socket
                .set_recv_buffer_size(bytes)
                .map_err(|source| NetError::Bind {
                    addr: unspecified,
                    source,
                })?;
        }
        if !self.sources.is_empty() {
            let n = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            let ip = self.sources[n];
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|source| NetError::Bind { addr: ip, source })?;
        }
        let stream = socket.connect(self.addr).await.map_err(NetError::Connect)?;
        stream.set_nodelay(true).map_err(NetError::Connect)?;
        Ok(stream)
    }

    /// Connects and performs the WebSocket handshake for `uri` (which must
    /// point at this dialer's server). Returns the stream and the time from
    /// the start of the TCP connect to the 101.
    pub async fn websocket(&self, uri: &Uri) -> Result<(WsConn, Duration), NetError> {
        let started = Instant::now();
        let dial = async {
            let tcp = self.tcp().await?;
            let builder = ClientBuilder::from_uri(uri.clone()).limits(Limits::unlimited());
            match builder.connect_on(tcp).await {
                Ok((ws, _response)) => Ok(ws),
                Err(tokio_websockets::Error::Upgrade(
                    tokio_websockets::upgrade::Error::DidNotSwitchProtocols(code),
                )) => Err(NetError::Status(code)),
                Err(e) => Err(NetError::Handshake(e)),
            }
        };
        let ws = tokio::time::timeout(self.timeout, dial)
            .await
            .map_err(|_| NetError::Timeout("connect"))??;
        Ok((ws, started.elapsed()))
    }
}

/// What [`connect_many`] achieved.
#[derive(Debug)]
pub struct ConnectSummary {
    /// Connections made.
    pub ok: u64,
    /// Connections that failed, by [`NetError::label`].
    pub errors: Tally,
    /// Connect-to-101 time of the successful ones.
    pub handshake: Latency,
    /// Wall time of the whole connect phase.
    pub elapsed: Duration,
}

/// Runs `connect(i)` for `i in 0..count` with at most `concurrency` in
/// flight, each on its own task, and tallies the outcomes.
///
/// `connect` returns the handshake time on success; it usually spawns the
/// connection's own task before returning. `on_done(ok)` is called after
/// each attempt (for progress counters).
pub async fn connect_many<F, Fut>(
    count: u64,
    concurrency: usize,
    connect: F,
    on_done: impl Fn(bool),
) -> ConnectSummary
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Duration, NetError>> + Send + 'static,
{
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut summary = ConnectSummary {
        ok: 0,
        errors: Tally::default(),
        handshake: Latency::precise(),
        elapsed: Duration::ZERO,
    };
    let mut record =
        |result: Result<Result<Duration, NetError>, tokio::task::JoinError>| match result {
            Ok(Ok(handshake)) => {
                summary.ok += 1;
                summary.handshake.record(handshake);
                on_done(true);
            }
            Ok(Err(e)) => {
                summary.errors.add(e.label());
                on_done(false);
            }
            Err(e) => {
                summary.errors.add(format!("task: {e}"));
                on_done(false);
            }
        };
    for i in 0..count {
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let attempt = connect(i);
        tasks.spawn(async move {
            let result = attempt.await;
            drop(permit);
            result
        });
        while let Some(result) = tasks.try_join_next() {
            record(result);
        }
    }
    while let Some(result) = tasks.join_next().await {
        record(result);
    }
    summary.elapsed = started.elapsed();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn target_parses_and_builds_channels() {
        let target = Target::resolve("ws://127.0.0.1:8199/pubsub/bench")
            .await
            .unwrap();
        assert_eq!(target.addr(), "127.0.0.1:8199".parse().unwrap());
        assert_eq!(target.authority(), "127.0.0.1:8199");
        assert_eq!(target.path(), "/pubsub/bench");
        assert_eq!(
            target.channel("7").unwrap().to_string(),
            "ws://127.0.0.1:8199/pubsub/bench/7"
        );
        assert!(matches!(
            Target::resolve("http://127.0.0.1/x").await,
            Err(NetError::InvalidUrl { .. })
        ));
    }

    #[tokio::test]
    async fn dialer_spreads_over_sources() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/x", listener.local_addr().unwrap());
        let target = Target::resolve(&url).await.unwrap();
        let dialer = Dialer::new(&target, 3, Duration::from_secs(5));
        assert_eq!(dialer.sources().len(), 3);
        let mut peers = Vec::new();
        for _ in 0..3 {
            let _client = dialer.tcp().await.unwrap();
            let (_server, peer) = listener.accept().await.unwrap();
            peers.push(peer.ip());
        }
        let want: Vec<IpAddr> = (1..=3)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
            .collect();
        assert_eq!(peers, want);
    }

    #[tokio::test]
    async fn connect_many_counts_failures() {
        // Nothing listens on this port once the listener is dropped.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target::resolve(&format!("ws://{addr}/x")).await.unwrap();
        let dialer = Arc::new(Dialer::new(&target, 1, Duration::from_secs(5)));
        let uri = target.uri().clone();
        let summary = connect_many(
            5,
            2,
            |_| {
                let dialer = dialer.clone();
                let uri = uri.clone();
                async move { dialer.websocket(&uri).await.map(|(_, t)| t) }
            },
            |_| {},
        )
        .await;
        assert_eq!(summary.ok, 0);
        assert_eq!(summary.errors.total(), 5);
        assert_eq!(
            summary.errors.iter().next().unwrap().0,
            "connect: connection refused"
        );
    }
}
