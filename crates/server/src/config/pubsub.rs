//! `[pubsub]`: the Pinghub-compatible publish/subscribe service.

use std::time::Duration;

use serde::Deserialize;
use switchboard_core::OutboxLimits;
use switchboard_edge::OriginPolicy;
use switchboard_services::pubsub::PubsubConfig;

use super::{ConfigError, check_prefix, invalid};

/// `[pubsub]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubSection {
    /// Whether the service runs.
    pub enabled: bool,
    /// Mount prefix, e.g. `/pubsub` (empty = the root).
    pub prefix: String,
    /// Allowed WebSocket origins; `["*"]` allows all.
    pub origins: Vec<String>,
    /// Largest WebSocket message in bytes.
    pub max_message: usize,
    /// Largest POST body in bytes.
    pub max_post: usize,
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
    /// Server ping period in seconds.
    pub ping_interval_secs: u64,
    /// Seconds without a pong before disconnecting.
    pub pong_timeout_secs: u64,
    /// Seconds one socket flush may take.
    pub write_timeout_secs: u64,
    /// Channels that keep history (`[[pubsub.history]]` tables); none by default.
    pub history: Vec<HistorySection>,
}

/// One `[[pubsub.history]]` table: channels under `prefix` keep their recent
/// messages (in memory on one node, in JetStream on a cluster).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// A channel prefix such as `/feed/` (the longest matching prefix wins).
    pub prefix: String,
    /// Most messages kept per channel.
    pub max_messages: usize,
    /// Seconds a message is kept.
    pub max_age_secs: u64,
}

/// The most messages a channel may keep (and a subscriber may ask to replay).
pub const MAX_HISTORY: usize = switchboard_services::pubsub::history::MAX_LAST;

impl Default for PubsubSection {
    fn default() -> Self {
        let d = PubsubConfig::default();
        PubsubSection {
            enabled: true,
            prefix: "/pubsub".into(),
            origins: vec!["*".into()],
            max_message: d.max_message,
            max_post: d.max_post,
            outbox_messages: d.outbox.max_messages,
            outbox_bytes: d.outbox.max_bytes,
            slow_consumer_bytes: d.outbox.slow_bytes,
            slow_consumer_secs: d.outbox.slow_after.as_secs(),
            ping_interval_secs: d.ping_interval.as_secs(),
            pong_timeout_secs: d.pong_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            history: Vec::new(),
        }
    }
}

impl PubsubSection {
    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = self;
        check_prefix("pubsub.prefix", &p.prefix)?;
        for (key, v) in [
            ("pubsub.max_message", p.max_message),
            ("pubsub.max_post", p.max_post),
            ("pubsub.outbox_messages", p.outbox_messages),
            ("pubsub.outbox_bytes", p.outbox_bytes),
            ("pubsub.slow_consumer_bytes", p.slow_consumer_bytes),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("pubsub.ping_interval_secs", p.ping_interval_secs),
            ("pubsub.pong_timeout_secs", p.pong_timeout_secs),
            ("pubsub.write_timeout_secs", p.write_timeout_secs),
            ("pubsub.slow_consumer_secs", p.slow_consumer_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if p.pong_timeout_secs < p.ping_interval_secs {
            return Err(invalid(
                "pubsub.pong_timeout_secs",
                "must not be shorter than pubsub.ping_interval_secs",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for h in &p.history {
            if !h.prefix.starts_with('/') {
                return Err(invalid(
                    "pubsub.history.prefix",
                    format!(
                        "{:?} must start with '/' (a channel prefix such as \"/feed/\")",
                        h.prefix
                    ),
                ));
            }
            if !seen.insert(&h.prefix) {
                return Err(invalid(
                    "pubsub.history.prefix",
                    format!("{:?} appears twice", h.prefix),
                ));
            }
            if !(1..=MAX_HISTORY).contains(&h.max_messages) {
                return Err(invalid(
                    "pubsub.history.max_messages",
                    format!("must be between 1 and {MAX_HISTORY}"),
                ));
            }
            if h.max_age_secs == 0 {
                return Err(invalid("pubsub.history.max_age_secs", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The retention classes of the channels that keep history, as bus topics.
    pub fn retentions(&self) -> Vec<switchboard_core::bus::Retention> {
        if !self.enabled {
            return Vec::new();
        }
        self.history
            .iter()
            .map(|h| switchboard_core::bus::Retention {
                prefix: switchboard_services::pubsub::topic(&h.prefix),
                max_messages: h.max_messages,
                max_age: Duration::from_secs(h.max_age_secs),
                render: switchboard_services::pubsub::render_envelope,
            })
            .collect()
    }

    /// The pubsub service settings.
    pub fn service_config(&self) -> PubsubConfig {
        let p = self;
        PubsubConfig {
            prefix: p.prefix.clone(),
            origins: OriginPolicy::new(p.origins.iter().cloned()),
            max_message: p.max_message,
            max_post: p.max_post,
            outbox: OutboxLimits {
                max_messages: p.outbox_messages,
                max_bytes: p.outbox_bytes,
                slow_bytes: p.slow_consumer_bytes,
                slow_after: Duration::from_secs(p.slow_consumer_secs),
            },
            ping_interval: Duration::from_secs(p.ping_interval_secs),
            pong_timeout: Duration::from_secs(p.pong_timeout_secs),
            write_timeout: Duration::from_secs(p.write_timeout_secs),
            history: p.history.iter().map(|h| h.prefix.clone()).collect(),
        }
    }
}
