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
use switchboard_edge::{Bound, ListenAddr};
use switchboard_services::echo::Echo;
use switchboard_services::pairing::{Pairing, dockerflow};
use switchboard_services::pubsub::Pubsub;
use switchboard_services::rtc::Rtc;
use switchboard_store::{Store, StoreError};

use crate::config::{Config, ConfigError};
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
    /// The store, opened when an enabled service keeps state (rtc).
    pub store: Option<Arc<dyn Store>>,
    /// Cancelled to shut down.
    pub shutdown: CancellationToken,
    /// Tracks every connection task.
    pub tracker: TaskTracker,
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
            )
        });
        let store = if config.rtc.enabled {
            let url = config.store.resolved_url();
            let store = switchboard_store::open_with(&url, &config.store.options()).await?;
            tracing::info!(backend = store.backend(), "store opened");
            Some(store)
        } else {
            None
        };
        let rtc = match &store {
            Some(store) if config.rtc.enabled => {
                let proxies = switchboard_edge::client_ip::TrustedProxies::parse(
                    &config.server.trusted_proxies,
                )
                .map_err(|e| crate::config::invalid("server.trusted_proxies", e.to_string()))?;
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
        Ok(App {
            config: Arc::new(config),
            relay,
            registry,
            presence: cluster.presence,
            records: cluster.records,
            membership: cluster.membership,
            pubsub,
            pairing,
            rtc,
            store,
            shutdown,
            tracker,
        })
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
        let mut out = Vec::new();
        if self.config.console.enabled {
            out.push(("console".into(), format!("{base}/")));
        }
        if self.pubsub.is_some() {
            let ws = base.replacen("http", "ws", 1);
            out.push((
                "pubsub".into(),
                format!("{ws}{}/<channel>", self.config.pubsub.prefix),
            ));
        }
        if self.pairing.is_some() {
            let ws = base.replacen("http", "ws", 1);
            out.push((
                "pairing".into(),
                format!("{ws}{}/v1/ws/", self.config.pairing.prefix),
            ));
        }
        if self.rtc.is_some() {
            let p = &self.config.rtc.prefix;
            out.push((
                "rtc".into(),
                format!(
                    "{base}{p}/v1/register, {}{p}/v1/connect",
                    base.replacen("http", "ws", 1)
                ),
            ));
            if self.config.rtc.call_page {
                out.push(("call".into(), format!("{base}{p}/call")));
            }
        }
        if self.config.echo.enabled {
            out.push((
                "echo".into(),
                format!("{}/echo", base.replacen("http", "ws", 1)),
            ));
        }
        out
    }
}

/// Binds every configured listener (and the ops listener, if enabled).
pub async fn bind(config: &Config) -> anyhow::Result<(Vec<Bound>, Option<Bound>)> {
    let mut listeners = Vec::new();
    for l in &config.server.listen {
        listeners.push(Bound::bind(&ListenAddr::parse(l)?).await?);
    }
    let ops = if config.ops.enabled {
        Some(Bound::bind(&ListenAddr::parse(&config.ops.listen)?).await?)
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
    for l in listeners {
        accept.spawn(switchboard_edge::listener::serve(
            l,
            router.clone(),
            app.shutdown.clone(),
            app.tracker.clone(),
        ));
    }
    if let Some(o) = ops {
        accept.spawn(switchboard_edge::listener::serve(
            o,
            ops::router(app.clone()),
            app.shutdown.clone(),
            app.tracker.clone(),
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
