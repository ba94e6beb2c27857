//! Builds this node's cluster backends from `[cluster]`: the in-process ones
//! for a lone node, or the NATS ones ([`switchboard_bus::nats`]) sharing one
//! connection. The services only ever see the core seams (`Relay`,
//! `Presence`, `Records`, `Membership`), so they run the same either way.

use std::sync::Arc;
use std::time::Duration;

use switchboard_bus::nats::{NatsBus, NatsConn, NatsMembership, NatsRecords, NatsSetupError};
use switchboard_bus::{LocalBus, LocalRecords};
use switchboard_core::bus::Bus;
use switchboard_core::membership::Solo;
use switchboard_core::records::Space;
use switchboard_core::{Membership, NodeId, Presence, Records, Registry, Relay, Topics};

use crate::config::Config;

/// The record spaces services use: each a NATS KV bucket on a cluster.
pub const SPACES: [Space; 3] = [
    // rtc: who is online under a name (presence claims).
    Space {
        name: switchboard_services::rtc::NAMESPACE,
        max_age: None,
    },
    // pairing: each channel's members and counters.
    Space {
        name: switchboard_services::pairing::SERVICE,
        max_age: Some(Duration::from_secs(24 * 3600)),
    },
    // meetings: which node owns (runs the actor of) each meeting.
    Space {
        name: switchboard_services::meetings::remote::SPACE,
        max_age: None,
    },
];

/// This node's view of the cluster (a cluster of one without NATS).
#[derive(Debug, Clone)]
pub struct ClusterParts {
    /// Delivery: the hub and the bus.
    pub relay: Relay,
    /// Shared records.
    pub records: Arc<dyn Records>,
    /// Who is alive.
    pub membership: Arc<dyn Membership>,
    /// Cluster-wide claims.
    pub presence: Presence,
    /// The NATS connection, on a cluster.
    pub nats: Option<Arc<NatsConn>>,
}

/// The relay, records, membership and NATS connection, before presence joins them.
type Backends = (
    Relay,
    Arc<dyn Records>,
    Arc<dyn Membership>,
    Option<Arc<NatsConn>>,
);

/// The cluster policies of topics, from the services' configuration.
pub fn topics(config: &Config) -> Topics {
    let mut t = Topics::new().ordered("pubsub");
    for r in config.pubsub.retentions() {
        t = t.keep(r);
    }
    t
}

/// Builds the backends for `config`; on a cluster, starts connecting to NATS
/// (in the background: a node that cannot reach it starts anyway, not ready).
pub async fn build(config: &Config, registry: &Registry) -> Result<ClusterParts, NatsSetupError> {
    let shards = config.server.hub_shards;
    let (relay, records, membership, nats): Backends = if config.cluster.enabled() {
        let conn = NatsConn::start(config.cluster.nats_options()).await?;
        let node = NodeId(rand::random::<u32>().max(1));
        let members = NatsMembership::start(conn.clone(), node);
        let bus = NatsBus::new(conn.clone(), members.clone(), topics(config));
        let records = NatsRecords::new(conn.clone(), &SPACES);
        tracing::info!(
            node = %node,
            name = %conn.options().node_name,
            servers = %conn.options().redacted_servers(),
            prefix = %conn.options().prefix,
            "joining the cluster over NATS"
        );
        (Relay::new(bus, shards), records, members, Some(conn))
    } else {
        let bus = LocalBus::single(topics(config));
        let node = bus.node();
        let solo = Arc::new(Solo::new(node, config.cluster.node_name()));
        (
            Relay::new(bus, shards),
            Arc::new(LocalRecords::new(&SPACES)),
            solo,
            None,
        )
    };
    let reg = registry.clone();
    let presence = Presence::new(
        records.clone(),
        membership.clone(),
        Arc::new(move |c| reg.is_open(c)),
    );
    Ok(ClusterParts {
        relay,
        records,
        membership,
        presence,
        nats,
    })
}
