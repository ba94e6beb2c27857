//! `[pairing]`: the channelserver-compatible device pairing service (Firefox Accounts).
//!
//! The limit keys keep the original channelserver's names, units (seconds) and
//! defaults, so a channelserver settings file reads the same here.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use switchboard_core::OutboxLimits;
use switchboard_edge::client_ip::TrustedProxies;
use switchboard_services::pairing::lang::DefaultLanguage;
use switchboard_services::pairing::{ChannelLimits, PairingConfig, StatsdConfig};

use super::{ConfigError, ServerSection, check_prefix, invalid};

/// `[pairing]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PairingSection {
    /// Whether the service runs.
    pub enabled: bool,
    /// Mount prefix before `/v1/ws/` (empty: at the root, where the real clients connect).
    pub prefix: String,
    /// Messages a channel relays before the next one ends it (0: unlimited).
    pub max_exchanges: u64,
    /// Envelope bytes after which a channel ends (0: unlimited).
    pub max_data: u64,
    /// Seconds a channel lives, counted from its creation (0: unlimited).
    pub conn_lifespan: u64,
    /// Seconds without a ping, pong or text message before a connection is closed.
    pub client_timeout: u64,
    /// Seconds between server pings.
    pub heartbeat_interval: u64,
    /// Most connections in one channel.
    pub max_channel_connections: u32,
    /// Extra trusted proxies (CIDRs or addresses) for this service, besides `server.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// Also trust 10/8, 172.16/12, 192.168/16 and fc00::/7, as the original always did.
    pub trust_private_ranges: bool,
    /// Language of GeoIP names when the sender's Accept-Language matches none.
    pub default_lang: String,
    /// Path of a GeoIP2/GeoLite2 City database; empty: no location in sender data.
    pub mmdb_loc: String,
    /// statsd `host:port` (port defaults to 8125); empty: no statsd.
    pub statsd_host: String,
    /// Prefix of every statsd name.
    pub metric_name: String,
    /// Serve the Dockerflow endpoints `/__heartbeat__`, `/__lbheartbeat__`, `/__version__` at the root.
    pub dockerflow: bool,
    /// Largest inbound WebSocket message in bytes (larger: close 1009).
    pub max_message: usize,
    /// Outbox bound in messages per connection.
    pub outbox_messages: usize,
    /// Outbox bound in bytes per connection.
    pub outbox_bytes: usize,
    /// A client whose socket has not been writable for `slow_consumer_secs`
    /// with at least this many bytes queued behind it does not read: it is
    /// ended as a slow consumer (close 1013) before the memory cap is reached.
    pub slow_consumer_bytes: usize,
    /// Seconds a socket may stay unwritable with `slow_consumer_bytes` queued.
    pub slow_consumer_secs: u64,
    /// Seconds one socket flush may take.
    pub write_timeout_secs: u64,
}

impl Default for PairingSection {
    fn default() -> Self {
        let d = PairingConfig::default();
        PairingSection {
            enabled: true,
            prefix: String::new(),
            max_exchanges: d.limits.max_exchanges,
            max_data: d.limits.max_data,
            conn_lifespan: d.limits.lifespan.as_secs(),
            client_timeout: d.client_timeout.as_secs(),
            heartbeat_interval: d.heartbeat_interval.as_secs(),
            max_channel_connections: 3,
            trusted_proxies: Vec::new(),
            trust_private_ranges: true,
            default_lang: d.default_lang.to_string(),
            mmdb_loc: String::new(),
            statsd_host: String::new(),
            metric_name: d.statsd.prefix,
            dockerflow: false,
            max_message: d.max_message,
            outbox_messages: d.outbox.max_messages,
            outbox_bytes: d.outbox.max_bytes,
            slow_consumer_bytes: d.outbox.slow_bytes,
            slow_consumer_secs: d.outbox.slow_after.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
        }
    }
}

impl PairingSection {
    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = self;
        check_prefix("pairing.prefix", &p.prefix)?;
        for (key, v) in [
            ("pairing.client_timeout", p.client_timeout),
            ("pairing.heartbeat_interval", p.heartbeat_interval),
            ("pairing.write_timeout_secs", p.write_timeout_secs),
            ("pairing.slow_consumer_secs", p.slow_consumer_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        for (key, v) in [
            (
                "pairing.max_channel_connections",
                p.max_channel_connections as usize,
            ),
            ("pairing.max_message", p.max_message),
            ("pairing.outbox_messages", p.outbox_messages),
            ("pairing.outbox_bytes", p.outbox_bytes),
            ("pairing.slow_consumer_bytes", p.slow_consumer_bytes),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        TrustedProxies::parse(&p.trusted_proxies)
            .map_err(|e| invalid("pairing.trusted_proxies", e.to_string()))?;
        DefaultLanguage::new(&p.default_lang)
            .map_err(|e| invalid("pairing.default_lang", e.to_string()))?;
        Ok(())
    }

    /// The pairing service settings. `server` supplies the deployment-wide
    /// trusted proxies. Call after [`PairingSection::validate`] (invalid entries are skipped).
    pub fn service_config(&self, server: &ServerSection) -> PairingConfig {
        let p = self;
        let entries = server.trusted_proxies.iter().chain(&p.trusted_proxies);
        let mut trusted = TrustedProxies::parse(entries).unwrap_or_default();
        if p.trust_private_ranges {
            trusted = trusted.with_private_ranges();
        }
        PairingConfig {
            prefix: p.prefix.clone(),
            limits: ChannelLimits {
                max_channel_connections: p.max_channel_connections as usize,
                max_exchanges: p.max_exchanges,
                max_data: p.max_data,
                lifespan: Duration::from_secs(p.conn_lifespan),
            },
            client_timeout: Duration::from_secs(p.client_timeout),
            heartbeat_interval: Duration::from_secs(p.heartbeat_interval),
            max_message: p.max_message,
            outbox: OutboxLimits {
                max_messages: p.outbox_messages,
                max_bytes: p.outbox_bytes,
                slow_bytes: p.slow_consumer_bytes,
                slow_after: Duration::from_secs(p.slow_consumer_secs),
            },
            write_timeout: Duration::from_secs(p.write_timeout_secs),
            trusted_proxies: trusted,
            default_lang: DefaultLanguage::new(&p.default_lang).unwrap_or_default(),
            mmdb: (!p.mmdb_loc.trim().is_empty()).then(|| PathBuf::from(&p.mmdb_loc)),
            statsd: StatsdConfig {
                host: p.statsd_host.clone(),
                prefix: p.metric_name.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn defaults_are_the_originals() {
        let p = PairingSection::default();
        assert_eq!(
            (
                p.max_exchanges,
                p.max_data,
                p.conn_lifespan,
                p.client_timeout,
                p.heartbeat_interval,
                p.max_channel_connections
            ),
            (10, 0, 300, 60, 5, 3)
        );
        assert_eq!(
            (p.metric_name.as_str(), p.default_lang.as_str()),
            ("channelserver", "en")
        );
        assert!(p.enabled && p.trust_private_ranges && !p.dockerflow);
        assert_eq!(p.prefix, "");
        p.validate().expect("defaults are valid");
    }

    #[test]
    fn the_example_file_documents_every_key_with_its_default() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../switchboard.example.toml");
        let text = std::fs::read_to_string(path).expect("example file");
        let example: toml::Table = toml::from_str(&text).expect("toml");
        let section = example["pairing"].as_table().expect("[pairing]").clone();
        let defaults = toml::Table::try_from(PairingSection::default()).expect("serialize");
        assert_eq!(section, defaults);
    }

    #[test]
    fn environment_overrides_reach_the_section() {
        let env = [
            ("SWITCHBOARD_PAIRING_MAX_EXCHANGES", "12"),
            (
                "SWITCHBOARD_PAIRING_TRUSTED_PROXIES",
                "127.0.0.1, 10.0.0.0/8",
            ),
            ("SWITCHBOARD_PAIRING_MMDB_LOC", "/x.mmdb"),
            ("SWITCHBOARD_PAIRING_DOCKERFLOW", "true"),
        ];
        let c = crate::Config::load(None, env.map(|(k, v)| (k.to_owned(), v.to_owned())))
            .expect("config");
        assert_eq!(c.pairing.max_exchanges, 12);
        assert_eq!(c.pairing.trusted_proxies, ["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(c.pairing.mmdb_loc, "/x.mmdb");
        assert!(c.pairing.dockerflow);
    }

    #[test]
    fn invalid_values_name_the_key() {
        type Breaks = fn(&mut PairingSection);
        let cases: &[(&str, Breaks)] = &[
            ("pairing.prefix", |p| p.prefix = "v1/".into()),
            ("pairing.client_timeout", |p| p.client_timeout = 0),
            ("pairing.heartbeat_interval", |p| p.heartbeat_interval = 0),
            ("pairing.max_channel_connections", |p| {
                p.max_channel_connections = 0
            }),
            ("pairing.max_message", |p| p.max_message = 0),
            ("pairing.trusted_proxies", |p| {
                p.trusted_proxies = vec!["10.0.0.0/33".into()]
            }),
            ("pairing.default_lang", |p| p.default_lang = "*".into()),
        ];
        for (key, breaks) in cases {
            let mut p = PairingSection::default();
            breaks(&mut p);
            let e = p.validate().expect_err(key).to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn service_config_merges_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let server = ServerSection {
            trusted_proxies: vec!["203.0.113.1".into()],
            ..ServerSection::default()
        };
        let mut p = PairingSection {
            trusted_proxies: vec!["2001:db8::/32".into()],
            mmdb_loc: "/x/GeoLite2-City.mmdb".into(),
            statsd_host: "localhost:8125".into(),
            conn_lifespan: 0,
            ..PairingSection::default()
        };
        let c = p.service_config(&server);
        for trusted in ["203.0.113.1", "2001:db8::5", "10.1.2.3", "192.168.0.1"] {
            assert!(c.trusted_proxies.contains(ip(trusted)), "{trusted}");
        }
        assert!(!c.trusted_proxies.contains(ip("127.0.0.1")));
        assert_eq!(
            c.mmdb.as_deref(),
            Some(std::path::Path::new("/x/GeoLite2-City.mmdb"))
        );
        assert_eq!(c.statsd.host, "localhost:8125");
        assert_eq!(c.limits.lifespan, Duration::ZERO);
        assert_eq!(c.limits.deadline_ms(1), None);
        p.trust_private_ranges = false;
        p.mmdb_loc.clear();
        let c = p.service_config(&server);
        assert!(!c.trusted_proxies.contains(ip("10.1.2.3")));
        assert_eq!(c.mmdb, None);
    }
}
