//! `[meetings]`: the pgeu-meetingserver-compatible meetings service.

use std::time::Duration;

use serde::Deserialize;
use switchboard_core::OutboxLimits;
use switchboard_edge::client_ip::TrustedProxies;
use switchboard_services::meetings::MeetingsConfig;
use switchboard_services::meetings::admin::AdminAccess;

use super::{ConfigError, invalid};

/// `[meetings]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MeetingsSection {
    /// Whether the service runs.
    pub enabled: bool,
    /// `native`: Switchboard's own tables in `[store]` (SQLite by default);
    /// `pgeu`: pgeu-system's PostgreSQL database at `pgeu_url`.
    pub schema: String,
    /// pgeu-system's database (`schema = "pgeu"`): a `postgres://` URL, also
    /// in lib/pq form (`host=/socket/dir` in the query).
    pub pgeu_url: String,
    /// The allowed `Origin`, compared exactly; `*` allows every origin.
    pub origin: String,
    /// Show `X-Forwarded-For` beside the peer in the status report.
    pub behind_proxy: bool,
    /// Largest inbound message in bytes (larger: close 1009).
    pub max_message: usize,
    /// Outbox bound in messages per connection (overflow: dropped, the page reconnects).
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
    /// Seconds without a pong before the connection is dropped.
    pub pong_timeout_secs: u64,
    /// Seconds one socket write may take.
    pub write_timeout_secs: u64,
    /// Commands queued per meeting (overflow: the sender is told it was busy).
    pub queue: usize,
    /// Most commands a meeting takes at once (the largest group commit).
    pub batch: usize,
    /// Seconds between re-reads of each running meeting's state from the database.
    pub state_poll_secs: u64,
    /// Serve `/__meetingstatus` on the main listener (as the original does).
    pub status_endpoint: bool,
    /// Milliseconds in a poll's "minute" (60000; shorter only for demos and tests).
    pub poll_minute_ms: u64,
    /// Serve the meeting page at `/meeting/{id}/{key}` (native mode).
    pub page: bool,
    /// Token for the setup API (`Authorization: Bearer …`), at least 16 bytes; empty: none.
    pub admin_token: String,
    /// Whether loopback and unix-socket peers may use the setup API without the token.
    pub admin_from_loopback: bool,
}

impl Default for MeetingsSection {
    fn default() -> Self {
        let d = MeetingsConfig::default();
        MeetingsSection {
            enabled: true,
            schema: "native".into(),
            pgeu_url: String::new(),
            origin: "*".into(),
            behind_proxy: d.behind_proxy,
            max_message: d.max_message,
            outbox_messages: d.outbox.max_messages,
            outbox_bytes: d.outbox.max_bytes,
            slow_consumer_bytes: d.outbox.slow_bytes,
            slow_consumer_secs: d.outbox.slow_after.as_secs(),
            ping_interval_secs: d.ping_interval.as_secs(),
            pong_timeout_secs: d.pong_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            queue: d.queue,
            batch: d.batch,
            state_poll_secs: d.state_poll.as_secs(),
            status_endpoint: false,
            poll_minute_ms: u64::try_from(d.poll_minute.as_millis()).unwrap_or(60_000),
            page: true,
            admin_token: String::new(),
            admin_from_loopback: true,
        }
    }
}

impl MeetingsSection {
    /// Whether the meetings live in pgeu-system's database.
    pub fn is_pgeu(&self) -> bool {
        self.schema == "pgeu"
    }

    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = self;
        match m.schema.as_str() {
            "native" => {}
            "pgeu" if m.pgeu_url.is_empty() => {
                return Err(invalid(
                    "meetings.pgeu_url",
                    "is required when meetings.schema is \"pgeu\"",
                ));
            }
            "pgeu" => {}
            _ => return Err(invalid("meetings.schema", "must be \"native\" or \"pgeu\"")),
        }
        if m.origin.is_empty() {
            return Err(invalid(
                "meetings.origin",
                "must be an origin (compared exactly) or \"*\"",
            ));
        }
        for (key, v) in [
            ("meetings.max_message", m.max_message),
            ("meetings.outbox_messages", m.outbox_messages),
            ("meetings.outbox_bytes", m.outbox_bytes),
            ("meetings.slow_consumer_bytes", m.slow_consumer_bytes),
            ("meetings.queue", m.queue),
            ("meetings.batch", m.batch),
            ("meetings.poll_minute_ms", usize::from(m.poll_minute_ms > 0)),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("meetings.ping_interval_secs", m.ping_interval_secs),
            ("meetings.pong_timeout_secs", m.pong_timeout_secs),
            ("meetings.write_timeout_secs", m.write_timeout_secs),
            ("meetings.slow_consumer_secs", m.slow_consumer_secs),
            ("meetings.state_poll_secs", m.state_poll_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if !m.admin_token.is_empty() && m.admin_token.len() < 16 {
            return Err(invalid(
                "meetings.admin_token",
                "must be empty or at least 16 bytes long",
            ));
        }
        Ok(())
    }

    /// The service settings.
    pub fn service_config(&self) -> MeetingsConfig {
        let m = self;
        MeetingsConfig {
            origin: (m.origin != "*").then(|| m.origin.clone()),
            behind_proxy: m.behind_proxy,
            max_message: m.max_message,
            outbox: OutboxLimits {
                max_messages: m.outbox_messages,
                max_bytes: m.outbox_bytes,
                slow_bytes: m.slow_consumer_bytes,
                slow_after: Duration::from_secs(m.slow_consumer_secs),
            },
            ping_interval: Duration::from_secs(m.ping_interval_secs),
            pong_timeout: Duration::from_secs(m.pong_timeout_secs),
            write_timeout: Duration::from_secs(m.write_timeout_secs),
            queue: m.queue,
            batch: m.batch,
            state_poll: Duration::from_secs(m.state_poll_secs),
            status_endpoint: m.status_endpoint,
            poll_minute: Duration::from_millis(m.poll_minute_ms),
        }
    }

    /// Who may use the setup API, with the client address resolved through `proxies`
    /// (`server.trusted_proxies`).
    pub fn admin_access(&self, proxies: TrustedProxies) -> AdminAccess {
        AdminAccess {
            token: (!self.admin_token.is_empty()).then(|| self.admin_token.clone()),
            from_loopback: self.admin_from_loopback,
            trusted_proxies: proxies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_native() {
        let s = MeetingsSection::default();
        s.validate().unwrap();
        assert!(!s.is_pgeu());
        let c = s.service_config();
        assert_eq!(c.max_message, 10_240);
        assert_eq!(c.origin, None);
        assert_eq!(c.ping_interval, Duration::from_secs(60));
        assert_eq!(c.pong_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case = (fn(&mut MeetingsSection), &'static str);
        let cases: &[Case] = &[
            (|s| s.schema = "django".into(), "meetings.schema"),
            (|s| s.schema = "pgeu".into(), "meetings.pgeu_url"),
            (|s| s.origin = String::new(), "meetings.origin"),
            (|s| s.max_message = 0, "meetings.max_message"),
            (|s| s.queue = 0, "meetings.queue"),
            (|s| s.state_poll_secs = 0, "meetings.state_poll_secs"),
            (|s| s.admin_token = "short".into(), "meetings.admin_token"),
        ];
        for (adjust, key) in cases {
            let mut s = MeetingsSection::default();
            adjust(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
