//! `[rtc]`: the webrtc-signal-server-compatible signaling service.

use std::time::Duration;

use serde::Deserialize;
use switchboard_core::OutboxLimits;
use switchboard_edge::OriginPolicy;
use switchboard_edge::client_ip::TrustedProxies;
use switchboard_services::rtc::RtcConfig;
use switchboard_services::rtc::identity::{Identities, MIN_SECRET_LEN};

use super::{ConfigError, check_prefix, invalid};

/// `[rtc]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtcSection {
    /// Whether the service runs.
    pub enabled: bool,
    /// Mount prefix, e.g. `/rtc` (empty: the original's paths at the root).
    pub prefix: String,
    /// Allowed WebSocket origins; `["*"]` allows all (the original checks none).
    pub origins: Vec<String>,
    /// Largest inbound WebSocket message in bytes (larger: close 1009).
    pub max_message: usize,
    /// Outbox bound in messages per connection (overflow: close 1013).
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
    /// Seconds without any inbound frame (pongs count) before close 1008.
    pub idle_timeout_secs: u64,
    /// Seconds one socket write may take.
    pub write_timeout_secs: u64,
    /// End every relayed message with `\n`, byte for byte as the original.
    pub trailing_newline: bool,
    /// Secret for signed cookies (`name.signature`, HMAC-SHA256), at least 16
    /// bytes; empty: unsigned cookies holding the bare name, as the original.
    pub cookie_secret: String,
    /// Token that authorizes `/v1/kick-active-users` from anywhere
    /// (`Authorization: Bearer …` or `?token=`), at least 16 bytes; empty: none.
    pub admin_token: String,
    /// Whether loopback clients may kick without the token.
    pub kick_from_loopback: bool,
    /// Registrations a minute per client address (0: unlimited); over it: 429.
    pub register_per_minute: u32,
    /// Registrations a client address may make at once before the rate applies.
    pub register_burst: u32,
    /// Serve the demo call page at `{prefix}/call`.
    pub call_page: bool,
}

impl Default for RtcSection {
    fn default() -> Self {
        let d = RtcConfig::default();
        RtcSection {
            enabled: true,
            prefix: "/rtc".into(),
            origins: vec!["*".into()],
            max_message: d.max_message,
            outbox_messages: d.outbox.max_messages,
            outbox_bytes: d.outbox.max_bytes,
            slow_consumer_bytes: d.outbox.slow_bytes,
            slow_consumer_secs: d.outbox.slow_after.as_secs(),
            ping_interval_secs: d.ping_interval.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            trailing_newline: d.trailing_newline,
            cookie_secret: String::new(),
            admin_token: String::new(),
            kick_from_loopback: d.kick_from_loopback,
            register_per_minute: d.register_per_minute,
            register_burst: d.register_burst,
            call_page: d.call_page,
        }
    }
}

impl RtcSection {
    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = self;
        check_prefix("rtc.prefix", &r.prefix)?;
        for (key, v) in [
            ("rtc.max_message", r.max_message),
            ("rtc.outbox_messages", r.outbox_messages),
            ("rtc.outbox_bytes", r.outbox_bytes),
            ("rtc.slow_consumer_bytes", r.slow_consumer_bytes),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("rtc.ping_interval_secs", r.ping_interval_secs),
            ("rtc.idle_timeout_secs", r.idle_timeout_secs),
            ("rtc.write_timeout_secs", r.write_timeout_secs),
            ("rtc.slow_consumer_secs", r.slow_consumer_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        if r.idle_timeout_secs < r.ping_interval_secs {
            return Err(invalid(
                "rtc.idle_timeout_secs",
                "must not be shorter than rtc.ping_interval_secs",
            ));
        }
        for (key, v) in [
            ("rtc.cookie_secret", &r.cookie_secret),
            ("rtc.admin_token", &r.admin_token),
        ] {
            if !v.is_empty() && v.len() < MIN_SECRET_LEN {
                return Err(invalid(
                    key,
                    format!("must be empty or at least {MIN_SECRET_LEN} bytes long"),
                ));
            }
        }
        if r.register_burst == 0 {
            return Err(invalid("rtc.register_burst", "must be at least 1"));
        }
        Ok(())
    }

    /// The rtc service settings; `trusted_proxies` comes from `[server]`.
    pub fn service_config(
        &self,
        trusted_proxies: TrustedProxies,
    ) -> Result<RtcConfig, ConfigError> {
        let r = self;
        let identities = if r.cookie_secret.is_empty() {
            Identities::unsigned()
        } else {
            Identities::signed(r.cookie_secret.as_bytes())
                .map_err(|e| invalid("rtc.cookie_secret", e.to_string()))?
        };
        Ok(RtcConfig {
            prefix: r.prefix.clone(),
            origins: OriginPolicy::new(r.origins.iter().cloned()),
            trusted_proxies,
            max_message: r.max_message,
            outbox: OutboxLimits {
                max_messages: r.outbox_messages,
                max_bytes: r.outbox_bytes,
                slow_bytes: r.slow_consumer_bytes,
                slow_after: Duration::from_secs(r.slow_consumer_secs),
            },
            ping_interval: Duration::from_secs(r.ping_interval_secs),
            idle_timeout: Duration::from_secs(r.idle_timeout_secs),
            write_timeout: Duration::from_secs(r.write_timeout_secs),
            trailing_newline: r.trailing_newline,
            identities,
            admin_token: (!r.admin_token.is_empty()).then(|| r.admin_token.clone()),
            kick_from_loopback: r.kick_from_loopback,
            register_per_minute: r.register_per_minute,
            register_burst: r.register_burst,
            call_page: r.call_page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_native() {
        let s = RtcSection::default();
        s.validate().unwrap();
        assert_eq!(s.prefix, "/rtc");
        let c = s.service_config(TrustedProxies::none()).unwrap();
        assert_eq!(c.max_message, 65536);
        assert!(!c.identities.is_signed());
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case = (fn(&mut RtcSection), &'static str);
        let cases: &[Case] = &[
            (|s| s.prefix = "rtc".into(), "rtc.prefix"),
            (|s| s.max_message = 0, "rtc.max_message"),
            (|s| s.ping_interval_secs = 0, "rtc.ping_interval_secs"),
            (|s| s.idle_timeout_secs = 5, "rtc.idle_timeout_secs"),
            (|s| s.cookie_secret = "short".into(), "rtc.cookie_secret"),
            (|s| s.admin_token = "short".into(), "rtc.admin_token"),
            (|s| s.register_burst = 0, "rtc.register_burst"),
        ];
        for (adjust, key) in cases {
            let mut s = RtcSection::default();
            adjust(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn a_secret_turns_on_signed_cookies() {
        let s = RtcSection {
            cookie_secret: "0123456789abcdef".into(),
            admin_token: "fedcba9876543210".into(),
            ..RtcSection::default()
        };
        s.validate().unwrap();
        let c = s.service_config(TrustedProxies::none()).unwrap();
        assert!(c.identities.is_signed());
        assert_eq!(c.admin_token.as_deref(), Some("fedcba9876543210"));
    }
}
