//! Listeners: TCP and unix sockets, and the accept loop that hands each
//! connection to hyper with the router.
//!
//! A listen address starting with `/` is a unix socket path; a stale socket file
//! (one nobody answers on) is removed before binding. Each accepted connection
//! carries its [`PeerAddr`] as a request extension.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses a listen value: a path starting with `/` or a `host:port`.
    pub fn parse(s: &str) -> Result<Self, ListenError> {
        if s.starts_with('/') {
            Ok(ListenAddr::Unix(PathBuf::from(s)))
        } else if s
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            Ok(ListenAddr::Tcp(s.to_owned()))
        } else {
            Err(ListenError::Invalid(s.to_owned()))
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => f.write_str(a),
            ListenAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The remote end of a connection, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub Option<SocketAddr>);

/// Listener errors.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The value is neither a `/path` nor a `host:port`.
    #[error("invalid listen address {0:?}: expected host:port or an absolute unix socket path")]
    Invalid(String),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A live server already answers on the unix socket.
    #[error("unix socket {0} is in use by a running server")]
    InUse(String),
    /// Binding failed; the caller names the address.
    #[error("{0}")]
    Os(std::io::Error),
}

/// A bound listener.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket, with its path (removed on drop of the server).
    Unix(UnixListener, PathBuf),
}

impl Bound {
    /// Binds `addr`.
    pub async fn bind(addr: &ListenAddr) -> Result<Self, ListenError> {
        match addr {
            ListenAddr::Tcp(a) => {
                bind_tcp(a)
                    .await
                    .map(Bound::Tcp)
                    .map_err(|source| ListenError::Bind {
                        addr: a.clone(),
                        source,
                    })
            }
            ListenAddr::Unix(p) => {
                if p.exists() {
                    if std::os::unix::net::UnixStream::connect(p).is_ok() {
                        return Err(ListenError::InUse(p.display().to_string()));
                    }
                    tracing::info!(path = %p.display(), "removing stale unix socket");
                    let _ = std::fs::remove_file(p);
                }
                UnixListener::bind(p)
                    .map(|l| Bound::Unix(l, p.clone()))
                    .map_err(|source| ListenError::Bind {
                        addr: p.display().to_string(),
                        source,
                    })
            }
        }
    }

    /// A printable URL for this listener, e.g. `http://127.0.0.1:8199` or `unix:/run/sb.sock`.
    pub fn url(&self) -> String {
        self.url_with(false)
    }

    /// Like [`url`](Self::url); `https://` for a TCP listener when `tls` (unix sockets stay plain).
    pub fn url_with(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        match self {
            Bound::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("{scheme}://{a}"),
                Err(_) => format!("{scheme}://?"),
            },
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// The TCP address, if this is a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }
}

/// The accept backlog asked of the kernel (which caps it at `net.core.somaxconn`).
/// mio's default of 128 drops SYNs when thousands of clients connect at once.
pub const LISTEN_BACKLOG: u32 = 4096;

async fn bind_tcp(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "address resolved to nothing",
        )
    }))
}

/// Accepts connections on `listener` and serves `router` on each until
/// `shutdown` is cancelled; then stops accepting and asks in-flight HTTP
/// connections to finish. Every connection task is tracked by `tracker`.
pub async fn serve(
    listener: Bound,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    serve_tls(listener, router, shutdown, tracker, None).await;
}

/// Like [`serve`]; with `tls`, TCP connections are served over TLS (the
/// handshake runs in the connection's task; see [`crate::tls`]).
pub async fn serve_tls(
    listener: Bound,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    tls: Option<crate::tls::Tls>,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok((io, peer)) => {
                let router = router.clone();
                let shutdown = shutdown.clone();
                match (io, &tls) {
                    (Io::Tcp(s), Some(tls)) => {
                        let acceptor = tls.acceptor();
                        tracker.spawn(async move {
                            let handshake = tokio::time::timeout(
                                crate::tls::HANDSHAKE_TIMEOUT,
                                acceptor.accept(s),
                            );
                            match handshake.await {
                                Ok(Ok(s)) => {
                                    serve_connection(Io::Tls(Box::new(s)), peer, router, shutdown)
                                        .await;
                                }
                                Ok(Err(e)) => {
                                    metrics::counter!("switchboard_tls_handshake_errors_total")
                                        .increment(1);
                                    tracing::debug!(error = %e, "tls handshake failed");
                                }
                                Err(_) => {
                                    metrics::counter!("switchboard_tls_handshake_errors_total")
                                        .increment(1);
                                    tracing::debug!("tls handshake timed out");
                                }
                            }
                        });
                    }
                    (io, _) => {
                        tracker.spawn(serve_connection(io, peer, router, shutdown));
                    }
                }
            }
            Err(e) => {
                metrics::counter!("switchboard_accept_errors_total").increment(1);
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Bound::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

async fn accept(l: &Bound) -> std::io::Result<(Io, PeerAddr)> {
    match l {
        Bound::Tcp(l) => {
            let (s, a) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Io::Tcp(s), PeerAddr(Some(a))))
        }
        Bound::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            Ok((Io::Unix(s), PeerAddr(None)))
        }
    }
}

async fn serve_connection(io: Io, peer: PeerAddr, router: Router, shutdown: CancellationToken) {
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(peer);
        router.clone().oneshot(req)
    });
    let builder = hyper::server::conn::http1::Builder::new();
    match io {
        Io::Tcp(s) => {
            drive(
                builder
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades(),
                shutdown,
            )
            .await
        }
        Io::Unix(s) => {
            drive(
                builder
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades(),
                shutdown,
            )
            .await
        }
        Io::Tls(s) => {
            drive(
                builder
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades(),
                shutdown,
            )
            .await
        }
    }
}

async fn drive<C>(conn: C, shutdown: CancellationToken)
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + GracefulConn,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "http connection error");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// hyper's upgradeable connection, seen through its graceful-shutdown method.
trait GracefulConn {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConn for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values_parse() {
        assert_eq!(
            ListenAddr::parse("/run/x.sock").unwrap(),
            ListenAddr::Unix("/run/x.sock".into())
        );
        assert_eq!(
            ListenAddr::parse("127.0.0.1:8081").unwrap(),
            ListenAddr::Tcp("127.0.0.1:8081".into())
        );
        assert_eq!(
            ListenAddr::parse("[::1]:80").unwrap(),
            ListenAddr::Tcp("[::1]:80".into())
        );
        assert!(ListenAddr::parse("8081").is_err());
        assert!(ListenAddr::parse("relative.sock").is_err());
    }

    #[tokio::test]
    async fn a_stale_unix_socket_is_replaced_and_a_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("sb-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "stale file left behind");
        let addr = ListenAddr::Unix(path.clone());
        let live = Bound::bind(&addr).await.unwrap();
        assert!(matches!(
            Bound::bind(&addr).await,
            Err(ListenError::InUse(_))
        ));
        drop(live);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
