//! `[talk]`: the Nextcloud Talk signaling service (nextcloud-spreed-signaling).

use std::time::Duration;

use serde::Deserialize;
use switchboard_core::OutboxLimits;
use switchboard_services::talk::{Backend, Backends, TalkConfig};

use super::{ConfigError, check_prefix, invalid};

/// One `[[talk.backends]]` table: a Nextcloud allowed to use this server.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TalkBackendSection {
    /// A name for logs (the original's backend section name).
    pub id: String,
    /// Base URLs of this Nextcloud (`https://cloud.example.com/`); a client's
    /// URL belongs to the backend when one of them is its prefix.
    pub urls: Vec<String>,
    /// The shared secret (Talk's "Shared secret"); empty: `talk.secret`.
    pub secret: String,
}

/// `[talk]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TalkSection {
    /// Whether the service runs (off by default).
    pub enabled: bool,
    /// Mount prefix: the WebSocket is `{prefix}/spreed` (empty: the original's paths at the root).
    pub prefix: String,
    /// Accept every Nextcloud with `talk.secret` (development and benchmarks only).
    pub allow_all: bool,
    /// The common secret (for `allow_all`, and backends without their own).
    pub secret: String,
    /// Largest inbound WebSocket message in bytes (larger: close 1009).
    pub max_message: usize,
    /// Outbox bound in messages per connection (overflow: close 1013).
    pub outbox_messages: usize,
    /// Outbox bound in bytes per connection.
    pub outbox_bytes: usize,
    /// Server ping period in seconds.
    pub ping_interval_secs: u64,
    /// Seconds without any inbound frame (pongs count) before close 1008.
    pub read_timeout_secs: u64,
    /// Seconds one socket write may take.
    pub write_timeout_secs: u64,
    /// Seconds a new connection has to send `hello`.
    pub hello_timeout_secs: u64,
    /// Seconds a session without a connection can be resumed.
    pub resume_window_secs: u64,
    /// Messages queued for a session without a connection; more end the session.
    pub detached_queue_messages: usize,
    /// Seconds one request to Nextcloud may take.
    pub backend_timeout_secs: u64,
    /// Concurrent requests per Nextcloud host.
    pub connections_per_host: usize,
    /// The Nextcloud servers allowed to use this server.
    pub backends: Vec<TalkBackendSection>,
}

impl Default for TalkSection {
    fn default() -> Self {
        let d = TalkConfig::default();
        TalkSection {
            enabled: false,
            prefix: "/talk".into(),
            allow_all: false,
            secret: String::new(),
            max_message: d.max_message,
            outbox_messages: d.outbox.max_messages,
            outbox_bytes: d.outbox.max_bytes,
            ping_interval_secs: d.ping_interval.as_secs(),
            read_timeout_secs: d.read_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            hello_timeout_secs: d.hub.hello_timeout.as_secs(),
            resume_window_secs: d.hub.resume_window.as_secs(),
            detached_queue_messages: d.hub.detached_queue,
            backend_timeout_secs: d.backend_timeout.as_secs(),
            connections_per_host: d.connections_per_host,
            backends: Vec::new(),
        }
    }
}

impl TalkSection {
    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self;
        check_prefix("talk.prefix", &t.prefix)?;
        for (key, v) in [
            ("talk.max_message", t.max_message),
            ("talk.outbox_messages", t.outbox_messages),
            ("talk.outbox_bytes", t.outbox_bytes),
            ("talk.detached_queue_messages", t.detached_queue_messages),
            ("talk.connections_per_host", t.connections_per_host),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("talk.ping_interval_secs", t.ping_interval_secs),
            ("talk.read_timeout_secs", t.read_timeout_secs),
            ("talk.write_timeout_secs", t.write_timeout_secs),
            ("talk.hello_timeout_secs", t.hello_timeout_secs),
            ("talk.resume_window_secs", t.resume_window_secs),
            ("talk.backend_timeout_secs", t.backend_timeout_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if t.read_timeout_secs < t.ping_interval_secs {
            return Err(invalid(
                "talk.read_timeout_secs",
                "must not be shorter than talk.ping_interval_secs",
            ));
        }
        if t.allow_all && t.secret.is_empty() {
            return Err(invalid(
                "talk.secret",
                "is empty while talk.allow_all is on; set the common secret",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, b) in t.backends.iter().enumerate() {
            let name = if b.id.is_empty() {
                format!("backend #{}", i + 1)
            } else {
                format!("backend {:?}", b.id)
            };
            if b.id.is_empty() {
                return Err(invalid("talk.backends.id", format!("{name} needs an id")));
            }
            if !ids.insert(b.id.as_str()) {
                return Err(invalid(
                    "talk.backends.id",
                    format!("{name} is configured twice"),
                ));
            }
            if b.urls.is_empty() {
                return Err(invalid(
                    "talk.backends.urls",
                    format!("{name} needs at least one URL"),
                ));
            }
            for u in &b.urls {
                if switchboard_services::talk::wire::base_url(u).is_none() {
                    return Err(invalid(
                        "talk.backends.urls",
                        format!("{name}: {u:?} is not an absolute http:// or https:// URL"),
                    ));
                }
            }
            if b.secret.is_empty() && t.secret.is_empty() {
                return Err(invalid(
                    "talk.backends.secret",
                    format!("{name} has no secret and talk.secret is empty"),
                ));
            }
        }
        if t.enabled && t.backends.is_empty() && !t.allow_all {
            return Err(invalid(
                "talk.backends",
                "the talk service is enabled but no backend is configured: add a [[talk.backends]] table (id, urls, secret), or set talk.allow_all with talk.secret for development",
            ));
        }
        Ok(())
    }

    /// The backends as the service sees them.
    pub fn backends(&self) -> Backends {
        if self.allow_all {
            return Backends::allow_all(self.secret.as_bytes().to_vec());
        }
        Backends::new(
            self.backends
                .iter()
                .map(|b| {
                    let secret = if b.secret.is_empty() {
                        &self.secret
                    } else {
                        &b.secret
                    };
                    let urls = b
                        .urls
                        .iter()
                        .filter_map(|u| switchboard_services::talk::wire::base_url(u))
                        .collect();
                    Backend::new(b.id.clone(), urls, secret.as_bytes().to_vec())
                })
                .collect(),
        )
    }

    /// The talk service settings.
    pub fn service_config(&self) -> TalkConfig {
        let t = self;
        let mut c = TalkConfig {
            prefix: t.prefix.clone(),
            max_message: t.max_message,
            outbox: OutboxLimits {
                max_messages: t.outbox_messages,
                max_bytes: t.outbox_bytes,
            },
            ping_interval: Duration::from_secs(t.ping_interval_secs),
            read_timeout: Duration::from_secs(t.read_timeout_secs),
            write_timeout: Duration::from_secs(t.write_timeout_secs),
            backend_timeout: Duration::from_secs(t.backend_timeout_secs),
            connections_per_host: t.connections_per_host,
            ..TalkConfig::default()
        };
        c.hub.backends = self.backends();
        c.hub.hello_timeout = Duration::from_secs(t.hello_timeout_secs);
        c.hub.resume_window = Duration::from_secs(t.resume_window_secs);
        c.hub.detached_queue = t.detached_queue_messages;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_backend() -> TalkSection {
        TalkSection {
            enabled: true,
            backends: vec![TalkBackendSection {
                id: "cloud".into(),
                urls: vec!["https://cloud.example.com".into()],
                secret: "s3cret".into(),
            }],
            ..TalkSection::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_off() {
        let s = TalkSection::default();
        s.validate().unwrap();
        assert!(!s.enabled);
        assert_eq!(s.prefix, "/talk");
        let c = one_backend().service_config();
        assert_eq!(c.max_message, 65536);
        assert_eq!(c.ping_interval, Duration::from_secs(54));
        assert_eq!(c.read_timeout, Duration::from_secs(60));
        assert_eq!(c.hub.hello_timeout, Duration::from_secs(2));
        assert_eq!(c.hub.resume_window, Duration::from_secs(30));
        assert!(
            c.hub
                .backends
                .for_url("https://cloud.example.com/")
                .is_some()
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case = (fn(&mut TalkSection), &'static str);
        let cases: &[Case] = &[
            (|s| s.prefix = "talk".into(), "talk.prefix"),
            (|s| s.max_message = 0, "talk.max_message"),
            (|s| s.hello_timeout_secs = 0, "talk.hello_timeout_secs"),
            (|s| s.read_timeout_secs = 5, "talk.read_timeout_secs"),
            (|s| s.backends.clear(), "talk.backends"),
            (|s| s.backends[0].id.clear(), "talk.backends.id"),
            (
                |s| s.backends[0].urls = vec!["cloud".into()],
                "talk.backends.urls",
            ),
            (|s| s.backends[0].secret.clear(), "talk.backends.secret"),
            (
                |s| {
                    s.allow_all = true;
                    s.secret.clear();
                },
                "talk.secret",
            ),
        ];
        for (adjust, key) in cases {
            let mut s = one_backend();
            adjust(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
