//! The pairing service: a drop-in for Mozilla's channelserver (Firefox Accounts device pairing).
//!
//! `GET {prefix}/v1/ws/` creates a channel, `GET {prefix}/v1/ws/{id}` joins one.
//! Every accepted connection first receives
//! `{"channelid":"<22-char id>","link":"{prefix}/v1/ws/<id>"}`; after that each
//! text message is trimmed and relayed to every *other* member as
//! `{"message":…,"sender":{…}}`, the sender object computed once, at upgrade,
//! from the sender's own request. Channels are held to the original's limits
//! (`max_exchanges`, `max_data`, `conn_lifespan`, `client_timeout`,
//! `max_channel_connections`, the same-address rule).
//!
//! The pieces:
//! - [`service`]: the HTTP handler, the handshake and the per-connection state machine.
//! - [`book`]: the channel book, the one piece of shared state, behind a narrow trait.
//! - [`client`]: who a connecting client is (address behind proxies, languages, geo).
//! - [`close`]: every close code this service sends.
//! - [`stats`]: statsd (the original's names) and Prometheus metrics.
//! - [`dockerflow`]: `/__heartbeat__`, `/__lbheartbeat__`, `/__version__`.
//! - [`channel_id`], [`geo`], [`lang`], [`sender`]: ids, GeoIP, `Accept-Language`, envelopes.
//!
//! Where this deliberately differs from the original, see `docs/compatibility.md`.

pub mod book;
pub mod channel_id;
pub mod client;
pub mod close;
pub mod dockerflow;
pub mod geo;
pub mod lang;
pub mod sender;
pub mod service;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use switchboard_core::OutboxLimits;
use switchboard_edge::client_ip::TrustedProxies;

pub use book::{ChannelBook, ChannelLimits};
pub use channel_id::ChannelId;
pub use service::Pairing;
pub use stats::StatsdConfig;

use lang::DefaultLanguage;

/// The service name used in metrics and the registry.
pub const SERVICE: &str = "pairing";

/// Settings of the pairing service. Defaults are the original channelserver's.
#[derive(Debug, Clone)]
pub struct PairingConfig {
    /// Mount prefix before `/v1/ws/`, without a trailing slash (`""`: at the root,
    /// which is where `fxa-pairing-channel` always connects).
    pub prefix: String,
    /// Channel limits (members, messages, data, lifespan).
    pub limits: ChannelLimits,
    /// A connection with no ping, pong or text for this long is closed (1008).
    pub client_timeout: Duration,
    /// The server pings every connection this often (empty payload).
    pub heartbeat_interval: Duration,
    /// Largest inbound message in bytes; larger closes the sender with 1009.
    pub max_message: usize,
    /// Per-connection outbox bounds (overflow closes with 1013).
    pub outbox: OutboxLimits,
    /// Longest one socket flush may take.
    pub write_timeout: Duration,
    /// Peers whose `X-Forwarded-For` and `X-Client-Geo-Location` are believed.
    pub trusted_proxies: TrustedProxies,
    /// Language for GeoIP names when the sender's `Accept-Language` matches none.
    pub default_lang: DefaultLanguage,
    /// The GeoIP2/GeoLite2 City database; `None` or an unreadable file: no geo fields.
    pub mmdb: Option<PathBuf>,
    /// statsd target and prefix.
    pub statsd: StatsdConfig,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            prefix: String::new(),
            limits: ChannelLimits::default(),
            client_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(5),
            max_message: 65536,
            outbox: OutboxLimits::default(),
            write_timeout: Duration::from_secs(10),
            trusted_proxies: TrustedProxies::none().with_private_ranges(),
            default_lang: DefaultLanguage::default(),
            mmdb: None,
            statsd: StatsdConfig::default(),
        }
    }
}
