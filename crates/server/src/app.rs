//! [`App`]: the services of one process built from a [`Config`], their router,
//! and [`run`], which serves them until shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use switchboard_core::{Disconnect, Membership, Presence, Records, Registry, Relay};
use switchboard_edge::socket::SocketConfig;
use switchboard_edge::{Bound, ConnectionCap, ListenAddr, PerIp, ServeOptions};
use switchboard_services::echo::Echo;
use switchboard_services::meetings::{self, Meetings};
use switchboard_services::pairing::{ChannelBook, Pairing, dockerflow};
use switchboard_services::pubsub::Pubsub;
use switchboard_services::rtc::Rtc;
use switchboard_services::talk::Talk;
use switchboard_store::{Store, StoreError};

use switchboard_edge::tls::{Tls, TlsError};

use crate::config::{Config, ConfigError};
use crate::reload::Reloader;
use crate::{console, ops};

/// The running services of one process.
#[derive(Debug, Clone)]
pub struct App {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// Delivery (hub + bus).
    pub relay: Relay,
    /// Live connections.
    pub registry: Registry,
    /// Cluster-wide claims.
    pub presence: Presence,
    /// Shared records.
    pub records: Arc<dyn Records>,
    /// Who is alive in the cluster.
    pub membership: Arc<dyn Membership>,
    /// The pubsub service, if enabled.
    pub pubsub: Option<Arc<Pubsub>>,
    /// The pairing service, if enabled.
    pub pairing: Option<Arc<Pairing>>,
    /// The rtc service, if enabled.
    pub rtc: Option<Arc<Rtc>>,
    /// The meetings service, if enabled.
    pub meetings: Option<Arc<Meetings>>,
    /// The talk service, if enabled.
    pub talk: Option<Arc<Talk>>,
    /// The store, opened when an enabled service keeps state (rtc).
    pub store: Option<Arc<dyn Store>>,
    /// Cancelled to shut down.
    pub shutdown: CancellationToken,
    /// Tracks every connection task.
    pub tracker: TaskTracker,
    /// TLS for the `server.listen` listeners, when `server.tls_cert` is set.
    pub tls: Option<Tls>,
    /// Everything SIGHUP reloads.
    pub reloader: Reloader,
    /// Samples for the console's charts.
    pub history: console::History,
    /// The ops listener's URL once it is bound (for the console's links).
    pub ops_url: Arc<std::sync::OnceLock<String>>,
    /// Who may use the meetings setup API.
    pub meetings_access: meetings::admin::AdminAccess,
}

/// Why the services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// A setting is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cluster's NATS settings are not usable.
    #[error("cluster: {0}")]
    Cluster(#[from] switchboard_bus::nats::NatsSetupError),
    /// The TLS certificate or key could not be loaded.
    #[error("server.tls_cert / server.tls_key: {0}")]
    Tls(#[from] TlsError),
}

/// A listener that could not be bound, named by its configuration key.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {key}: {source}; {hint}")]
pub struct BindError {
    /// `server.listen` or `ops.listen`.
    pub key: &'static str,
    /// The address.
    pub addr: String,
    /// How to move it (the flag or setting of the command that was run).
    pub hint: String,
    /// What went wrong.
    pub source: switchboard_edge::listener::ListenError,
}

/// How to move each listener, for the command that was run (native or a persona).
#[derive(Debug, Clone)]
pub struct ListenerHints {
    /// For `server.listen`.
    pub listen: String,
    /// For `ops.listen`.
    pub ops: String,
}

impl Default for ListenerHints {
    /// The native commands' flags.
    fn default() -> Self {
        ListenerHints {
            listen: "choose another address with --listen HOST:PORT (or server.listen)".into(),
            ops: "this is the metrics and health listener: move it with --ops-listen HOST:PORT \
                  (or ops.listen), or turn it off with --ops-listen off"
                .into(),
        }
    }
}

impl App {
    /// Builds every enabled service from `config`, opening the store when an
    /// enabled service needs one.
    pub async fn new(config: Config, shutdown: CancellationToken) -> Result<Self, AppError> {
        let registry = Registry::default();
        let cluster = crate::cluster::build(&config, &registry).await?;
        let relay = cluster.relay.clone();
        let tracker = TaskTracker::new();
        let socket = SocketConfig::base(shutdown.clone(), tracker.clone());
        let pubsub = config.pubsub.enabled.then(|| {
            Pubsub::new(
                config.pubsub.service_config(),
                relay.clone(),
                registry.clone(),
                socket.clone(),
            )
        });
        let pairing = config.pairing.enabled.then(|| {
            Pairing::new(
                config.pairing.service_config(&config.server),
                relay.clone(),
                registry.clone(),
                socket.clone(),
                ChannelBook::new(cluster.records.clone(), cluster.membership.clone()),
            )
        });
        let native_meetings = config.meetings.enabled && !config.meetings.is_pgeu();
        let store = if config.rtc.enabled || native_meetings {
            let url = config.store.resolved_url();
            Some(switchboard_store::open_with(&url, &config.store.options()).await?)
        } else {
            None
        };
        let proxies =
            switchboard_edge::client_ip::TrustedProxies::parse(&config.server.trusted_proxies)
                .map_err(|e| crate::config::invalid("server.trusted_proxies", e.to_string()))?;
        let meetings_access = config.meetings.admin_access(proxies.clone());
        let rtc = match &store {
            Some(store) if config.rtc.enabled => {
                let rtc_cfg = config.rtc.service_config(proxies)?;
                Some(Rtc::new(
                    rtc_cfg,
                    relay.clone(),
                    registry.clone(),
                    cluster.presence.clone(),
                    store.clone(),
                    socket.clone(),
                ))
            }
            _ => None,
        };
        let reloader = Reloader::default();
        let tls = if config.server.tls_cert.is_empty() {
            None
        } else {
            let tls = Tls::load(
                std::path::Path::new(&config.server.tls_cert),
                std::path::Path::new(&config.server.tls_key),
            )?;
            reloader.register(Arc::new(tls.clone()));
            Some(tls)
        };
        let meetings = if !config.meetings.enabled {
            None
        } else {
            let (archive, admin): (
                Arc<dyn switchboard_store::MeetingStore>,
                Option<Arc<dyn switchboard_store::MeetingAdmin>>,
            ) = match &store {
                Some(store) if native_meetings => (store.clone(), Some(store.clone())),
                _ => {
                    let archive = switchboard_store::open_pgeu(
                        &config.meetings.pgeu_url,
                        &config.store.options(),
                    )
                    .await?;
                    tracing::info!("meetings: pgeu-system database opened");
                    (archive, None)
                }
            };
            Some(Meetings::new(
                config.meetings.service_config(),
                archive,
                admin,
                meetings::Seams {
                    relay: relay.clone(),
                    registry: registry.clone(),
                    presence: cluster.presence.clone(),
                    membership: cluster.membership.clone(),
                },
                socket.clone(),
            ))
        };
        let talk = config.talk.enabled.then(|| {
            Talk::new(
                config.talk.service_config(),
                relay.clone(),
                registry.clone(),
                socket.clone(),
            )
        });
        let app = App {
            history: console::History::default(),
            ops_url: Arc::default(),
            tls,
            reloader,
            config: Arc::new(config),
            relay,
            registry,
            presence: cluster.presence,
            records: cluster.records,
            membership: cluster.membership,
            pubsub,
            pairing,
            rtc,
            meetings,
            talk,
            meetings_access,
            store,
            shutdown,
            tracker,
        };
        console::install_reporter(&app);
        Ok(app)
    }

    /// The router with every enabled service mounted.
    pub fn router(&self) -> Router {
        let cfg = &self.config;
        let mut router = Router::new();
        if cfg.echo.enabled {
            let echo = Echo::new(self.relay.clone(), self.socket_base());
            router = router.route("/echo", any(Echo::handle).with_state(echo));
        }
        if cfg.console.enabled {
            router = router.merge(console::router(self.clone()));
        }
        if let Some(pairing) = &self.pairing {
            router = router.merge(pairing.router());
            if cfg.pairing.dockerflow {
                router = router.merge(dockerflow::router(dockerflow::VersionInfo::default()));
            }
        }
        if let Some(m) = &self.meetings {
            router = router.route(
                &format!("{}{{*rest}}", meetings::WS_PREFIX),
                any(Meetings::handle_ws).with_state(m.clone()),
            );
            if cfg.meetings.status_endpoint {
                router = router.route(
                    "/__meetingstatus",
                    any(Meetings::handle_status).with_state(m.clone()),
                );
            }
            if let Some(api) = meetings::admin::router(
                m.clone(),
                meetings::admin::API_BASE,
                meetings::page::PAGE_BASE,
                self.meetings_access.clone(),
            ) {
                router = router.merge(api);
                if cfg.meetings.page {
                    router = router.merge(meetings::page::router(m.clone()));
                }
            }
        }
        if let Some(rtc) = &self.rtc {
            let prefix = &cfg.rtc.prefix;
            if prefix.is_empty() {
                router = router.fallback(any(Rtc::handle).with_state(rtc.clone()));
            } else {
                router = router
                    .route(prefix, any(Rtc::handle).with_state(rtc.clone()))
                    .route(
                        &format!("{prefix}/"),
                        any(Rtc::handle).with_state(rtc.clone()),
                    )
                    .route(
                        &format!("{prefix}/{{*path}}"),
                        any(Rtc::handle).with_state(rtc.clone()),
                    );
            }
        }
        if let Some(talk) = &self.talk {
            let prefix = &cfg.talk.prefix;
            if prefix.is_empty() {
                router = router.fallback(any(Talk::handle).with_state(talk.clone()));
            } else {
                router = router.route(
                    &format!("{prefix}/{{*path}}"),
                    any(Talk::handle).with_state(talk.clone()),
                );
            }
        }
        if let Some(pubsub) = &self.pubsub {
            let prefix = &cfg.pubsub.prefix;
            if prefix.is_empty() {
                router = router.fallback(any(Pubsub::handle).with_state(pubsub.clone()));
            } else {
                router = router
                    .route(
                        &format!("{prefix}/"),
                        any(Pubsub::handle).with_state(pubsub.clone()),
                    )
                    .route(
                        &format!("{prefix}/{{*channel}}"),
                        any(Pubsub::handle).with_state(pubsub.clone()),
                    );
            }
        }
        router
    }

    fn socket_base(&self) -> SocketConfig {
        SocketConfig::base(self.shutdown.clone(), self.tracker.clone())
    }

    /// The URLs a person can open, for the start-up banner.
    pub fn service_urls(&self, base: &str) -> Vec<(String, String)> {
        service_urls(&self.config, base)
    }
}

/// The URLs a person can open on a listener whose URL is `base`
/// (`http://…` or `https://…`), for every service `config` enables.
pub fn service_urls(config: &Config, base: &str) -> Vec<(String, String)> {
    let ws = base.replacen("http", "ws", 1);
    let mut out = Vec::new();
    if config.console.enabled {
        out.push(("console".into(), format!("{base}/")));
    }
    if config.pubsub.enabled {
        out.push((
            "pubsub".into(),
            format!("{ws}{}/<channel>", config.pubsub.prefix),
        ));
    }
    if config.pairing.enabled {
        out.push((
            "pairing".into(),
            format!("{ws}{}/v1/ws/", config.pairing.prefix),
        ));
    }
    if config.rtc.enabled {
        let p = &config.rtc.prefix;
        out.push((
            "rtc".into(),
            format!("{base}{p}/v1/register, {ws}{p}/v1/connect"),
        ));
        if config.rtc.call_page {
            out.push(("call".into(), format!("{base}{p}/call")));
        }
    }
    if config.meetings.enabled {
        out.push((
            "meetings".into(),
            format!("{ws}{}<id>/<key>/<highest seen>", meetings::WS_PREFIX),
        ));
        if config.meetings.page && !config.meetings.is_pgeu() {
            out.push((
                "meeting".into(),
                format!(
                    "{base}{}/<id>/<key>, setup API {base}{}",
                    meetings::page::PAGE_BASE,
                    meetings::admin::API_BASE
                ),
            ));
        }
    }
    if config.talk.enabled {
        let p = &config.talk.prefix;
        out.push((
            "talk".into(),
            format!("{ws}{p}/spreed, backend API {base}{p}/api/v1/"),
        ));
    }
    if config.echo.enabled {
        out.push(("echo".into(), format!("{ws}/echo")));
    }
    out
}

/// Binds every configured listener (and the ops listener, if enabled); an
/// error names the listener's key and the native flag that moves it.
pub async fn bind(config: &Config) -> Result<(Vec<Bound>, Option<Bound>), BindError> {
    bind_named(config, &ListenerHints::default()).await
}

/// Like [`bind`], with errors that say how to move a listener in the command that was run.
pub async fn bind_named(
    config: &Config,
    hints: &ListenerHints,
) -> Result<(Vec<Bound>, Option<Bound>), BindError> {
    async fn one(key: &'static str, addr: &str, hint: &str) -> Result<Bound, BindError> {
        let err = |source| BindError {
            key,
            addr: addr.to_owned(),
            hint: hint.to_owned(),
            source,
        };
        let parsed = ListenAddr::parse(addr).map_err(err)?;
        Bound::bind(&parsed).await.map_err(|e| match e {
            // The inner error repeats the address: keep only the OS's words.
            switchboard_edge::listener::ListenError::Bind { source, .. } => BindError {
                key,
                addr: addr.to_owned(),
                hint: hint.to_owned(),
                source: switchboard_edge::listener::ListenError::Os(source),
            },
            other => err(other),
        })
    }
    let mut listeners = Vec::new();
    for l in &config.server.listen {
        listeners.push(one("server.listen", l, &hints.listen).await?);
    }
    let ops = if config.ops.enabled {
        Some(one("ops.listen", &config.ops.listen, &hints.ops).await?)
    } else {
        None
    };
    Ok((listeners, ops))
}

/// Serves `app` on `listeners` (and `/metrics`, `/healthz` on `ops`) until
/// `app.shutdown` is cancelled; then refuses new sockets, closes every socket
/// with 1001, and waits up to the configured timeout for them to finish.
pub async fn run(app: App, listeners: Vec<Bound>, ops: Option<Bound>) {
    let router = app.router();
    let accept = TaskTracker::new();
    let server = &app.config.server;
    let files = crate::fdlimit::raise();
    let max = match server.max_connections {
        0 => files.connection_cap(),
        n => n,
    };
    if server.max_connections as u64 > files.soft {
        tracing::warn!(
            max_connections = max,
            open_files = files.soft,
            "server.max_connections is above the open-file limit: accept errors will come first"
        );
    }
    tracing::info!(
        max_connections = max,
        per_ip = server.max_connections_per_ip,
        upgrades_per_ip_per_sec = server.max_upgrades_per_ip_per_sec,
        "connection limits"
    );
    let proxies = switchboard_edge::client_ip::TrustedProxies::parse(&server.trusted_proxies)
        .unwrap_or_default();
    let main = ServeOptions {
        timeouts: server.timeouts(),
        cap: ConnectionCap::new(max),
        per_ip: PerIp::new(
            server.max_connections_per_ip,
            server.max_upgrades_per_ip_per_sec,
        ),
        trusted_proxies: proxies,
        tls: app.tls.clone(),
    };
    for l in listeners {
        accept.spawn(switchboard_edge::listener::serve(
            l,
            router.clone(),
            app.shutdown.clone(),
            app.tracker.clone(),
            main.clone(),
        ));
    }
    if app.config.console.enabled {
        accept.spawn(console::sample(app.clone()));
    }
    if let Some(o) = ops {
        let _ = app.ops_url.set(o.url());
        let mut ops_router = ops::router(app.clone());
        if app.config.ops.profiling {
            ops_router = ops_router.merge(crate::profile::router());
        }
        // Its own small cap, inside the reserve the main cap leaves.
        let mut opts = ServeOptions::new(ConnectionCap::new(crate::fdlimit::OPS_MAX_CONNECTIONS));
        opts.timeouts = server.timeouts();
        accept.spawn(switchboard_edge::listener::serve(
            o,
            ops_router,
            app.shutdown.clone(),
            app.tracker.clone(),
            opts,
        ));
    }
    accept.close();
    app.shutdown.cancelled().await;
    tracing::info!(connections = app.registry.len(), "shutting down");
    // Sockets see the token themselves; this also reaches any outbox-only session.
    app.registry.close_all(None, &Disconnect::Shutdown);
    accept.wait().await;
    app.tracker.close();
    let grace = Duration::from_secs(app.config.server.shutdown_timeout_secs);
    if tokio::time::timeout(grace, app.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = app.registry.len(),
            "shutdown timeout: dropping remaining connections"
        );
    }
    // Tell the other nodes this one is leaving (they release its claims at once).
    app.relay.close().await;
    if let Some(store) = &app.store
        && let Err(e) = store.close().await
    {
        tracing::warn!(error = %e, "closing the store");
    }
}
