//! Several real `switchboard` processes forming one cluster: a `nats-server` of
//! the test's own (dynamic port, JetStream in a scratch directory), a fresh
//! PostgreSQL database (a cluster refuses a node-local store), and N nodes on dynamic ports sharing both under a
//! subject prefix of their own. Nodes can be killed (SIGKILL) and NATS
//! restarted, to test faults.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_testkit::http;
use switchboard_testkit::nats::{NatsOptions, NatsServer};
use switchboard_testkit::pg::PgTestDb;
use switchboard_testkit::process::ServerProcess;
use switchboard_testkit::proxy::TcpProxy;

/// How long a node may take to say it is ready and sees the others.
const READY: Duration = Duration::from_secs(30);

/// Heartbeat and liveness timeout of test clusters (short, so faults resolve fast).
pub(crate) const HEARTBEAT_MS: u64 = 200;
pub(crate) const NODE_TIMEOUT_MS: u64 = 1500;

/// A running test cluster.
pub(crate) struct TestCluster {
    pub(crate) nats: NatsServer,
    pub(crate) pg: Option<PgTestDb>,
    /// The forwarder the nodes reach PostgreSQL through, when asked for.
    pub(crate) pg_proxy: Option<TcpProxy>,
    pub(crate) nodes: Vec<Option<ServerProcess>>,
    ops: Vec<SocketAddr>,
    prefix: String,
    extra: String,
    cluster_extra: String,
}

/// What a test cluster needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterSpec {
    /// Nodes to start.
    pub(crate) nodes: usize,
    /// Reach PostgreSQL through a [`TcpProxy`] the test can cut.
    pub(crate) postgres_proxy: bool,
    /// TOML appended to every node's config (services' sections).
    pub(crate) extra_toml: String,
    /// Options of the test's nats-server.
    pub(crate) nats: NatsOptions,
    /// The subject prefix (default: a random one).
    pub(crate) prefix: Option<String>,
    /// Lines added to every node's `[cluster]` table (authentication, say).
    pub(crate) cluster_toml: String,
    /// Whether to wait for every node to be ready (a test of refusals does not).
    pub(crate) no_wait: bool,
}

/// The address in `switchboard: ops on http://ADDR/metrics …`.
fn ops_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("ops on http://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

impl TestCluster {
    /// Starts the cluster, or `None` (after the missing-dependency rule) when
    /// nats-server or PostgreSQL is missing.
    pub(crate) async fn start(spec: ClusterSpec) -> Option<TestCluster> {
        let nats = NatsServer::start_with(spec.nats.clone())?;
        // Every cluster shares one store: a fresh PostgreSQL database.
        let pg = Some(PgTestDb::create().await?);
        let pg_proxy = match (&pg, spec.postgres_proxy) {
            (Some(db), true) => {
                let target = switchboard_testkit::deps::url_host_port(db.url())
                    .parse()
                    .expect("the test server is host:port");
                Some(TcpProxy::start(target).await)
            }
            _ => None,
        };
        let mut c = TestCluster {
            nats,
            pg,
            pg_proxy,
            nodes: Vec::new(),
            ops: Vec::new(),
            prefix: spec
                .prefix
                .clone()
                .unwrap_or_else(|| format!("it{:08x}", rand::random::<u32>())),
            extra: spec.extra_toml,
            cluster_extra: spec.cluster_toml,
        };
        for i in 0..spec.nodes {
            let (node, ops) = c.spawn(i);
            c.nodes.push(Some(node));
            c.ops.push(ops);
        }
        if !spec.no_wait {
            c.wait_ready().await;
        }
        Some(c)
    }

    /// The TOML of node `i`.
    pub(crate) fn config(&self, i: usize) -> String {
        let store = match (&self.pg, &self.pg_proxy) {
            (Some(db), Some(proxy)) => {
                let direct = switchboard_testkit::deps::url_host_port(db.url()).to_owned();
                db.url().replacen(&direct, &proxy.addr().to_string(), 1)
            }
            (Some(db), None) => db.url().to_owned(),
            (None, _) => "sqlite::memory:".to_owned(),
        };
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
[ops]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[cluster]
nats_url = "{nats}"
subject_prefix = "{prefix}"
node_name = "node{i}"
heartbeat_ms = {HEARTBEAT_MS}
node_timeout_ms = {NODE_TIMEOUT_MS}
{cluster}
{extra}
"#,
            nats = self.nats.url(),
            prefix = self.prefix,
            cluster = self.cluster_extra,
            extra = self.extra,
        )
    }

    fn spawn(&self, i: usize) -> (ServerProcess, SocketAddr) {
        let node = ServerProcess::serve_config(&self.config(i), 1);
        let line = node
            .wait_for_line("ops on http://", READY)
            .expect("the node prints its ops address");
        let ops = ops_addr(&line).expect("an ops address");
        (node, ops)
    }

    /// Node `i` (panics if it was killed).
    pub(crate) fn node(&self, i: usize) -> &ServerProcess {
        self.nodes[i].as_ref().expect("a live node")
    }

    /// Node `i`'s WebSocket/HTTP address.
    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        self.node(i).addr()
    }

    /// Node `i`'s ops address (`/metrics`, `/healthz`).
    pub(crate) fn ops(&self, i: usize) -> SocketAddr {
        self.ops[i]
    }

    /// The value of a metric (summed over label sets matching `labels`) on node `i`.
    pub(crate) async fn metric(&self, i: usize, name: &str, labels: &str) -> f64 {
        let text = http::get(self.ops(i), "/metrics").await.text();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .filter(|l| labels.is_empty() || l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until every live node is ready (`/healthz` 200) and sees every live node.
    pub(crate) async fn wait_ready(&self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect();
        let deadline = tokio::time::Instant::now() + READY;
        for &i in &live {
            loop {
                let healthy = http::get(self.ops(i), "/healthz").await.status == 200;
                let seen = self.metric(i, "switchboard_cluster_nodes", "").await;
                if healthy && seen as usize == live.len() {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {i} not ready (healthz {healthy}, sees {seen} of {} nodes):\n{}",
                    live.len(),
                    self.node(i).output(60)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Kills node `i` with SIGKILL (no goodbye).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.signal("KILL");
            drop(node);
        }
    }

    /// The subject prefix of this cluster.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
