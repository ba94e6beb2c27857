//! Listeners: TCP and unix sockets, and the accept loop that hands each
//! connection to hyper with the router.
//!
//! A listen address starting with `/` is a unix socket path; a stale socket file
//! (one nobody answers on) is removed before binding. Each accepted connection
//! carries its [`PeerAddr`] as a request extension.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::backoff::AcceptBackoff;
use crate::client_ip::TrustedProxies;
use crate::conn::{Activity, TimedBody, Watched};
use crate::limits::{ConnectionCap, HttpTimeouts, PerIp};

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

/// How a listener treats its connections: timeouts, limits, TLS.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Timeouts for the request head, idle keep-alive and stalled bodies.
    pub timeouts: HttpTimeouts,
    /// Connections open at once (shared by the listeners given the same cap).
    pub cap: ConnectionCap,
    /// Per client address limits (off unless configured).
    pub per_ip: PerIp,
    /// Proxies whose `X-Forwarded-For` names the client for [`PerIp`].
    pub trusted_proxies: TrustedProxies,
    /// Serve TCP connections over TLS (the handshake runs in the connection's
    /// task; see [`crate::tls`]).
    pub tls: Option<crate::tls::Tls>,
}

impl ServeOptions {
    /// Default timeouts, at most `cap` connections, no per-address limits, no TLS.
    pub fn new(cap: ConnectionCap) -> Self {
        ServeOptions {
            timeouts: HttpTimeouts::default(),
            cap,
            per_ip: PerIp::new(0, 0),
            trusted_proxies: TrustedProxies::default(),
            tls: None,
        }
    }
}

/// Refused connections kept open at once, per listener, until the client has
/// read its 503 (each holds a descriptor for up to [`REFUSAL_LINGER`]); more
/// get the same answer written and are closed at once.
const MAX_REFUSING: usize = 16;
/// How long a refused connection is kept to deliver its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why a connection was refused before HTTP (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The listener's [`ConnectionCap`] is reached.
    Cap,
    /// The client address's connection limit is reached.
    PerIp,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Cap => "cap",
            Refusal::PerIp => "per_ip",
        }
    }
}

fn count_refusal(reason: &'static str) {
    metrics::counter!("switchboard_connections_refused_total", "reason" => reason).increment(1);
}

/// Accepts connections on `listener` and serves `router` on each until
/// `shutdown` is cancelled; then stops accepting and asks in-flight HTTP
/// connections to finish. Every connection task is tracked by `tracker`.
///
/// Over `opts.cap` (or a client address's limit) a connection is answered
/// 503 with `Retry-After: 1` and closed (on a TLS listener: closed), counted
/// in `switchboard_connections_refused_total`. Accept errors back off
/// ([`AcceptBackoff`]).
pub async fn serve(
    listener: Bound,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    opts: ServeOptions,
) {
    let opts = Arc::new(opts);
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = accept(&listener) => a,
        };
        let (io, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                metrics::counter!("switchboard_accept_errors_total").increment(1);
                let step = backoff.failed(Instant::now());
                if let Some(failures) = step.log {
                    tracing::warn!(
                        error = %e,
                        failures,
                        wait_ms = step.wait.as_millis() as u64,
                        "accept failed (counted since the last such line); backing off"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(step.wait) => continue,
                }
            }
        };
        let Some(place) = opts.cap.try_acquire() else {
            refuse(io, Refusal::Cap, opts.tls.is_some(), &refusing);
            continue;
        };
        let activity = Activity::new();
        // A client that is not a trusted proxy is limited from its first byte.
        if opts.per_ip.limits_connections()
            && let Some(ip) = peer.0.map(|a| a.ip())
            && !opts.trusted_proxies.contains(ip)
        {
            match opts.per_ip.try_connect(ip) {
                Some(g) => activity.hold_ip_place(g),
                None => {
                    drop(place);
                    refuse(io, Refusal::PerIp, opts.tls.is_some(), &refusing);
                    continue;
                }
            }
        }
        let router = router.clone();
        let shutdown = shutdown.clone();
        let opts = opts.clone();
        match (io, &opts.tls) {
            (Io::Tcp(s), Some(tls)) => {
                let acceptor = tls.acceptor();
                tracker.spawn(async move {
                    let handshake =
                        tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(s));
                    match handshake.await {
                        Ok(Ok(s)) => {
                            let io = Watched::new(s, activity.clone(), Some(place));
                            serve_connection(io, peer, activity, router, shutdown, opts).await;
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
            (Io::Tcp(s), None) => {
                let io = Watched::new(s, activity.clone(), Some(place));
                tracker.spawn(serve_connection(io, peer, activity, router, shutdown, opts));
            }
            (Io::Unix(s), _) => {
                let io = Watched::new(s, activity.clone(), Some(place));
                tracker.spawn(serve_connection(io, peer, activity, router, shutdown, opts));
            }
        }
    }
    if let Bound::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// The answer to a connection refused before HTTP.
const REFUSED_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
Content-Length: 43\r\n\
\r\n\
server at its connection limit; retry later";

/// Answers 503 and closes (on TLS: closes). The answer is written at once
/// (it fits the empty socket buffer); then, for at most [`MAX_REFUSING`]
/// connections at a time, a task keeps the connection for up to
/// [`REFUSAL_LINGER`] so the client reads the answer before the close (see
/// [`linger_and_close`]); beyond that it is closed at once.
fn refuse(io: Io, why: Refusal, tls: bool, refusing: &Arc<AtomicUsize>) {
    count_refusal(why.label());
    if tls {
        return;
    }
    let _ = match &io {
        Io::Tcp(s) => s.try_write(REFUSED_503),
        Io::Unix(s) => s.try_write(REFUSED_503),
    };
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        match io {
            Io::Tcp(s) => linger_and_close(s).await,
            Io::Unix(s) => linger_and_close(s).await,
        }
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Ends the sending side (after the answer already written) and reads until
/// the client closes, so the kernel does not reset the connection for request
/// bytes left unread, which could lose the answer.
async fn linger_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        s.shutdown().await?;
        let mut sink = [0u8; 1024];
        while s.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
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

/// A plain-text refusal of a request with `Retry-After: 1` that also closes the connection.
fn refused_request(status: StatusCode, body: &'static str) -> Response<axum::body::Body> {
    let mut r: Response<axum::body::Body> = crate::text_response(status, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The per-address checks of one request: a connection from behind a trusted
/// proxy takes its address's place with its first request; an upgrade counts
/// against its address's rate. `Some` is the refusal to send.
fn check_request(
    req: &http::Request<Incoming>,
    peer: PeerAddr,
    activity: &Activity,
    opts: &ServeOptions,
) -> Option<Response<axum::body::Body>> {
    let per_ip = &opts.per_ip;
    if !per_ip.limits_connections() && !per_ip.limits_upgrades() {
        return None;
    }
    let ip = peer.0.and_then(|a| {
        opts.trusted_proxies
            .resolve_headers(a.ip(), req.headers(), false)
            .ip()
    })?;
    if per_ip.limits_connections() && !activity.has_ip_place() {
        match per_ip.try_connect(ip) {
            Some(g) => activity.hold_ip_place(g),
            None => {
                count_refusal(Refusal::PerIp.label());
                return Some(refused_request(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections from your address; retry later\n",
                ));
            }
        }
    }
    if per_ip.limits_upgrades()
        && crate::upgrade::is_upgrade_request(req.headers())
        && !per_ip.allow_upgrade(ip, Instant::now())
    {
        count_refusal("upgrade_rate");
        return Some(refused_request(
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket upgrades from your address; retry later\n",
        ));
    }
    None
}

async fn serve_connection<S>(
    io: Watched<S>,
    peer: PeerAddr,
    activity: Arc<Activity>,
    router: Router,
    shutdown: CancellationToken,
    opts: Arc<ServeOptions>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = opts.timeouts;
    let watched = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let activity = activity.clone();
        let refusal = check_request(&req, peer, &activity, &opts);
        req.extensions_mut().insert(peer);
        let router = router.clone();
        activity.request_started();
        async move {
            let resp = match refusal {
                Some(r) => Ok(r),
                None => {
                    let req = req.map(|b| TimedBody::new(b, timeouts.body));
                    router.oneshot(req).await
                }
            };
            activity.request_done();
            resp
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog in `drive` times heads and idle connections.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    drive(conn, &watched, &timeouts, shutdown).await;
    watched.http_ended();
}

/// Runs one HTTP connection until it ends, the watchdog closes it
/// ([`Activity::deadline`]), or shutdown asks it to finish.
async fn drive<C>(
    conn: C,
    activity: &Activity,
    timeouts: &HttpTimeouts,
    shutdown: CancellationToken,
) where
    C: std::future::Future<Output = Result<(), hyper::Error>> + GracefulConn,
{
    let mut conn = std::pin::pin!(conn);
    // The deadline moves as the connection changes phase (a handler answers, a
    // head begins) without telling the watchdog, so it also looks again this
    // often; a deadline is met at most this late.
    let recheck = timeouts.header.min(timeouts.idle);
    let next = |a: &Activity| {
        let soon = Instant::now() + recheck;
        a.deadline(timeouts).map_or(soon, |(at, _)| at.min(soon))
    };
    let watchdog = tokio::time::sleep_until(next(activity));
    tokio::pin!(watchdog);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "http connection error");
                }
                return;
            }
            () = &mut watchdog => {
                match activity.deadline(timeouts) {
                    Some((at, phase)) if at <= Instant::now() => {
                        metrics::counter!("switchboard_http_timeouts_total", "phase" => phase.label())
                            .increment(1);
                        tracing::debug!(phase = phase.label(), "closing a slow or idle http connection");
                        return;
                    }
                    _ => watchdog.as_mut().reset(next(activity)),
                }
            }
            () = shutdown.cancelled() => {
                conn.as_mut().graceful();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                return;
            }
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
