//! `[cluster]`: several nodes behind one load balancer, sharing a NATS server
//! (with JetStream) and one PostgreSQL. Empty `nats_url` (the default) means one
//! node on the in-process bus.
//!
//! Every key can be set from the environment as `SWITCHBOARD_CLUSTER_<KEY>`
//! (for example `SWITCHBOARD_CLUSTER_NATS_URL`), which every persona honours too.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use switchboard_bus::nats::NatsOptions;

use super::{ConfigError, invalid};

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// NATS server URLs, comma-separated (`nats://host:4222`, `tls://host:4222`,
    /// credentials allowed as `nats://user:pass@host`). Empty: a single node.
    pub nats_url: String,
    /// This node's name in logs and NATS's connection list; empty: host name and pid.
    pub node_name: String,
    /// Prefix of every subject, stream and bucket, so clusters can share one NATS.
    pub subject_prefix: String,
    /// NATS user (with `password`).
    pub user: String,
    /// NATS password (with `user`).
    pub password: String,
    /// NATS authentication token.
    pub token: String,
    /// A NATS `.creds` file (JWT + NKey seed), as `nsc` writes them.
    pub creds_file: String,
    /// A PEM file of CA certificates to trust for `tls://` URLs (default: the system's).
    pub tls_ca_file: String,
    /// Milliseconds between this node's heartbeats.
    pub heartbeat_ms: u64,
    /// Milliseconds of silence after which a node is declared dead and what it
    /// held for its clients (online names, pairing members) is released.
    pub node_timeout_ms: u64,
    /// Messages the outbound queue to NATS holds before publishes are dropped (counted).
    pub outbound_queue: usize,
    /// Milliseconds a request to NATS (readiness, delivery acknowledgement, records) may take.
    pub request_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        let d = NatsOptions::new(Vec::new(), "");
        ClusterSection {
            nats_url: String::new(),
            node_name: String::new(),
            subject_prefix: d.prefix,
            user: String::new(),
            password: String::new(),
            token: String::new(),
            creds_file: String::new(),
            tls_ca_file: String::new(),
            heartbeat_ms: d.heartbeat.as_millis() as u64,
            node_timeout_ms: d.node_timeout.as_millis() as u64,
            outbound_queue: d.outbound_queue,
            request_timeout_ms: d.request_timeout.as_millis() as u64,
        }
    }
}

/// The host name and process id, the default node name.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into());
    format!("{host}-{}", std::process::id())
}

impl ClusterSection {
    /// Whether this node joins a cluster over NATS.
    pub fn enabled(&self) -> bool {
        !self.nats_url.trim().is_empty()
    }

    fn servers(&self) -> Vec<String> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The node name to use.
    pub fn node_name(&self) -> String {
        if self.node_name.is_empty() {
            default_node_name()
        } else {
            self.node_name.clone()
        }
    }

    /// The NATS options (valid after [`ClusterSection::validate`]).
    pub fn nats_options(&self) -> NatsOptions {
        let mut o = NatsOptions::new(self.servers(), self.node_name());
        o.prefix = self.subject_prefix.clone();
        if !self.user.is_empty() {
            o.user_password = Some((self.user.clone(), self.password.clone()));
        }
        o.token = (!self.token.is_empty()).then(|| self.token.clone());
        o.creds_file = (!self.creds_file.is_empty()).then(|| PathBuf::from(&self.creds_file));
        o.tls_ca_file = (!self.tls_ca_file.is_empty()).then(|| PathBuf::from(&self.tls_ca_file));
        o.heartbeat = Duration::from_millis(self.heartbeat_ms);
        o.node_timeout = Duration::from_millis(self.node_timeout_ms);
        o.outbound_queue = self.outbound_queue;
        o.request_timeout = Duration::from_millis(self.request_timeout_ms);
        o
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for url in self.servers() {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("nats" | "tls")) {
                return Err(invalid(
                    "cluster.nats_url",
                    format!(
                        "{:?} is not a NATS URL: use nats://host:port or tls://host:port, several separated by commas",
                        redact(&url)
                    ),
                ));
            }
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| invalid("cluster.nats_url", format!("{:?}: {e}", redact(&url))))?;
        }
        let prefix_ok = self.subject_prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !prefix_ok {
            return Err(invalid(
                "cluster.subject_prefix",
                "must be dot-separated tokens of letters, digits, '-' and '_' (for example \"switchboard\")",
            ));
        }
        if self.user.is_empty() != self.password.is_empty() {
            return Err(invalid(
                "cluster.user",
                "user and password are set together (or put them in nats_url)",
            ));
        }
        for (key, path) in [
            ("cluster.creds_file", &self.creds_file),
            ("cluster.tls_ca_file", &self.tls_ca_file),
        ] {
            if !path.is_empty() && !std::path::Path::new(path).is_file() {
                return Err(invalid(key, format!("{path} is not a readable file")));
            }
        }
        if self.heartbeat_ms == 0 {
            return Err(invalid("cluster.heartbeat_ms", "must be at least 1"));
        }
        if self.node_timeout_ms < 2 * self.heartbeat_ms {
            return Err(invalid(
                "cluster.node_timeout_ms",
                "must be at least twice heartbeat_ms",
            ));
        }
        if self.outbound_queue == 0 {
            return Err(invalid("cluster.outbound_queue", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("cluster.request_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// A URL for an error message, without its password.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes_are_checked_naming_the_key() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("", "switchboard", None),
            ("nats://127.0.0.1:4222", "switchboard", None),
            ("nats://a:1, tls://b:2", "acme.sb", None),
            ("http://x:1", "switchboard", Some("cluster.nats_url")),
            (
                "nats://u:secret@h:1,redis://h",
                "sb",
                Some("cluster.nats_url"),
            ),
            ("nats://h:1", "a..b", Some("cluster.subject_prefix")),
            ("nats://h:1", "a.*", Some("cluster.subject_prefix")),
        ];
        for (url, prefix, err) in cases {
            let c = ClusterSection {
                nats_url: (*url).into(),
                subject_prefix: (*prefix).into(),
                ..Default::default()
            };
            match (c.validate(), err) {
                (Ok(()), None) => {}
                (Err(ConfigError::Invalid { key, message }), Some(k)) => {
                    assert_eq!(key, *k, "{url} {prefix}");
                    assert!(!message.contains("secret"), "{message}");
                }
                (got, want) => panic!("{url} {prefix}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_default_node_name_is_host_and_pid() {
        let n = ClusterSection::default().node_name();
        assert!(n.ends_with(&format!("-{}", std::process::id())), "{n}");
    }
}
