//! [`NatsConn`]: the one NATS connection of a node, shared by the bus, the
//! records and the membership.
//!
//! Connecting never blocks start-up: [`NatsConn::start`] returns at once and a
//! task dials until the server answers, logging the URL and the cause of the
//! first failure in one line (and a reminder at most every 30 s). Until then,
//! and while a connection is lost, [`NatsConn::health`] says not connected and
//! the parts that need the server fail fast (counted) instead of waiting. Once
//! connected, async-nats reconnects by itself and restores subscriptions;
//! every (re)connect bumps [`NatsConn::generation`], on which the parts that
//! keep server-side state (streams, buckets, interest handshakes) redo it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use metrics::counter;
use switchboard_core::bus::{BusError, BusHealth};
use tokio::sync::watch;

use super::subject::{PrefixError, Subjects};

/// How to reach NATS and what this node is called there.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URLs (`nats://`, `tls://`; user:password@ allowed), tried in turn.
    pub servers: Vec<String>,
    /// This node's name, for logs and the server's connection list.
    pub node_name: String,
    /// The subject prefix shared by the nodes of one cluster.
    pub prefix: String,
    /// User and password (instead of putting them in the URL).
    pub user_password: Option<(String, String)>,
    /// An authentication token.
    pub token: Option<String>,
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes them.
    pub creds_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for `tls://` servers.
    pub tls_ca_file: Option<PathBuf>,
    /// Messages the outbound queue holds before publishes are dropped (counted).
    pub outbound_queue: usize,
    /// How long a request (readiness, acknowledged delivery, records) may take.
    pub request_timeout: Duration,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
    /// How long a silent node stays alive in the others' view.
    pub node_timeout: Duration,
}

impl NatsOptions {
    /// Options for `servers` with the defaults for everything else.
    pub fn new(servers: Vec<String>, node_name: impl Into<String>) -> Self {
        NatsOptions {
            servers,
            node_name: node_name.into(),
            prefix: "switchboard".into(),
            user_password: None,
            token: None,
            creds_file: None,
            tls_ca_file: None,
            outbound_queue: 65_536,
            request_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
        }
    }

    /// The URLs for logs, without any password.
    pub fn redacted_servers(&self) -> String {
        self.servers
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `scheme://user:***@host` for `scheme://user:pass@host`; others unchanged.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((auth, host)) => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Why the NATS parts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsSetupError {
    /// The subject prefix is not usable.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// No server URL.
    #[error("no NATS server URL")]
    NoServers,
    /// The credentials file could not be read.
    #[error("cannot read the NATS credentials file {path}: {source}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The node's NATS connection. See the module docs.
#[derive(Debug)]
pub struct NatsConn {
    options: NatsOptions,
    subjects: Subjects,
    client: watch::Sender<Option<Client>>,
    generation: watch::Sender<u64>,
    connected: AtomicBool,
    first_connect_seen: AtomicBool,
    last_error: Mutex<String>,
}

impl NatsConn {
    /// Starts connecting (see the module docs). Needs a running tokio runtime.
    pub async fn start(options: NatsOptions) -> Result<Arc<Self>, NatsSetupError> {
        if options.servers.is_empty() {
            return Err(NatsSetupError::NoServers);
        }
        let subjects = Subjects::new(&options.prefix)?;
        let conn = Arc::new(NatsConn {
            subjects,
            client: watch::channel(None).0,
            generation: watch::channel(0).0,
            connected: AtomicBool::new(false),
            first_connect_seen: AtomicBool::new(false),
            last_error: Mutex::new("connecting".into()),
            options,
        });
        let connect = conn.connect_options().await?;
        tokio::spawn(dial(Arc::downgrade(&conn), connect));
        Ok(conn)
    }

    async fn connect_options(self: &Arc<Self>) -> Result<ConnectOptions, NatsSetupError> {
        let o = &self.options;
        let mut c = match &o.creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path.clone())
                .await
                .map_err(|source| NatsSetupError::Creds {
                    path: path.clone(),
                    source,
                })?,
            None => ConnectOptions::new(),
        };
        if let Some((user, pass)) = &o.user_password {
            c = c.user_and_password(user.clone(), pass.clone());
        }
        if let Some(token) = &o.token {
            c = c.token(token.clone());
        }
        if let Some(ca) = &o.tls_ca_file {
            c = c.add_root_certificates(ca.clone());
        }
        if o.servers.iter().any(|s| s.starts_with("tls://")) {
            c = c.require_tls(true);
        }
        let weak = Arc::downgrade(self);
        Ok(c.name(&o.node_name)
            // A node never needs its own publishes back: it delivered them itself.
            .no_echo()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(o.request_timeout))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(
                    (100 * 2u64.saturating_pow(attempts.min(6) as u32)).min(5_000),
                )
            })
            .event_callback(move |event| {
                let weak = weak.clone();
                async move {
                    if let Some(conn) = weak.upgrade() {
                        conn.on_event(event);
                    }
                }
            }))
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                if !self.first_connect_seen.swap(true, Ordering::AcqRel) {
                    // The first connection: `dial` announces it once connect() returns.
                    return;
                }
                counter!("switchboard_bus_reconnects_total").increment(1);
                tracing::info!(servers = %self.options.redacted_servers(), "NATS connection restored");
                self.connected.store(true, Ordering::Release);
                self.generation.send_modify(|g| *g += 1);
            }
            Event::Disconnected => {
                self.connected.store(false, Ordering::Release);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    "connection lost; reconnecting".into();
                tracing::warn!(servers = %self.options.redacted_servers(), "NATS connection lost; reconnecting");
            }
            Event::SlowConsumer(_) => {
                counter!("switchboard_bus_dropped_total", "reason" => "nats_slow_consumer")
                    .increment(1);
            }
            Event::ServerError(e) => {
                counter!("switchboard_bus_errors_total", "kind" => "server").increment(1);
                crate::nats::log_once("server_error", &format!("NATS server error: {e}"));
            }
            Event::ClientError(e) => {
                counter!("switchboard_bus_errors_total", "kind" => "client").increment(1);
                crate::nats::log_once("client_error", &format!("NATS client error: {e}"));
            }
            Event::LameDuckMode | Event::Draining | Event::Closed => {}
        }
    }

    /// The subject names of this cluster.
    pub(crate) fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &NatsOptions {
        &self.options
    }

    /// The client, once the first connection succeeded.
    pub(crate) fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// The client, waiting up to `timeout` for the first connection.
    pub(crate) async fn client_within(&self, timeout: Duration) -> Result<Client, BusError> {
        let mut rx = self.client.subscribe();
        let wait = rx.wait_for(Option::is_some);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(c)) => c.clone().ok_or(BusError::Disconnected),
            Ok(Err(_)) => Err(BusError::Closed),
            Err(_) => Err(BusError::Disconnected),
        }
    }

    /// The client, once the first connection succeeded (waits as long as it takes;
    /// `None` if the connection is dropped first).
    pub(crate) async fn wait_client(&self) -> Option<Client> {
        let mut rx = self.client.subscribe();
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|c| c.clone())
    }

    /// A round trip through the server: when it returns `Ok`, the server has
    /// processed everything this connection sent before (a flush only proves
    /// the bytes were written to the socket).
    pub(crate) async fn round_trip(&self, client: &Client) -> Result<(), BusError> {
        let timeout = self.options.request_timeout;
        let subject = format!("{}.sync", self.options.prefix);
        match tokio::time::timeout(timeout, client.request(subject, Bytes::new())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(_)) => Err(BusError::Disconnected),
            Err(_) => Err(BusError::Timeout(timeout)),
        }
    }

    /// The current connection generation (0 before the first connection).
    pub(crate) fn generation_now(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Bumped on every (re)connect; watch it to redo server-side setup.
    pub(crate) fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Connected or not, and why.
    pub fn health(&self) -> BusHealth {
        let servers = self.options.redacted_servers();
        if self.is_connected() {
            BusHealth {
                connected: true,
                detail: format!("connected to NATS at {servers}"),
            }
        } else {
            let why = self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            BusHealth {
                connected: false,
                detail: format!("not connected to NATS at {servers}: {why}"),
            }
        }
    }
}

/// Dials until the first connection succeeds, logging the first failure and a
/// reminder at most every 30 s.
async fn dial(conn: std::sync::Weak<NatsConn>, options: ConnectOptions) {
    let mut wait = Duration::from_millis(100);
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        let Some(c) = conn.upgrade() else { return };
        let servers: Vec<String> = c.options.servers.clone();
        let shown = c.options.redacted_servers();
        drop(c);
        let addrs: Vec<async_nats::ServerAddr> = match servers.iter().map(|s| s.parse()).collect() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(servers = %shown, error = %e, "invalid NATS server URL; not connecting");
                return;
            }
        };
        match options.clone().connect(addrs).await {
            Ok(client) => {
                let Some(c) = conn.upgrade() else { return };
                tracing::info!(servers = %shown, node = %c.options.node_name, "connected to NATS");
                c.connected.store(true, Ordering::Release);
                c.client.send_replace(Some(client));
                c.generation.send_modify(|g| *g += 1);
                return;
            }
            Err(e) => {
                let cause = error_chain(&e);
                if let Some(c) = conn.upgrade() {
                    *c.last_error.lock().unwrap_or_else(|e| e.into_inner()) = cause.clone();
                }
                counter!("switchboard_bus_connect_failures_total").increment(1);
                let now = tokio::time::Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30)) {
                    let first = last_log.is_none();
                    last_log = Some(now);
                    if first {
                        tracing::warn!(servers = %shown, cause = %cause, "cannot reach NATS; retrying until it answers (not ready meanwhile)");
                    } else {
                        tracing::warn!(servers = %shown, cause = %cause, "still cannot reach NATS; retrying");
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("nats://bob:s3cret@127.0.0.1:4222"),
            "nats://bob:***@127.0.0.1:4222"
        );
        assert_eq!(redact("tls://h:4222"), "tls://h:4222");
        assert_eq!(redact("nats://tok@h"), "nats://tok:***@h");
    }
}
