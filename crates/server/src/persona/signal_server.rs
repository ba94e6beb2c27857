//! The webrtc-signal-server persona: `switchboard signal-server [--listen ADDR]`.
//!
//! The original has no flags, environment variables or config file: it binds
//! `:8000` on every interface and serves its paths at the root. This persona
//! does the same by default (`0.0.0.0:8000`), with only the rtc service
//! running, the original's paths at the root, and no demo page. The flags
//! cover what the original could not do: where to listen, where registered
//! names are kept (default `./switchboard.sqlite3`), signed cookies, the kick
//! token, trusted reverse proxies and the ops listener.

use crate::config::{Config, ConfigError};

/// The original's listen address: port 8000 on every IPv4 interface.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8000";

/// The persona's command line (parsed by `main` with clap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalServerArgs {
    /// Listen addresses (`host:port` or a unix socket path); default [`DEFAULT_LISTEN`].
    pub listen: Vec<String>,
    /// Store URL; default `./switchboard.sqlite3`.
    pub store: Option<String>,
    /// Secret for signed cookies; default unsigned, as the original.
    pub cookie_secret: Option<String>,
    /// Token for the kick endpoint from other hosts.
    pub admin_token: Option<String>,
    /// Ops listener (`/metrics`, `/healthz`), or `off`; default `127.0.0.1:8198`.
    pub ops_listen: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
    pub trusted_proxies: Vec<String>,
}

/// Builds the configuration for the persona.
pub fn config(args: &SignalServerArgs) -> Result<Config, ConfigError> {
    let mut c = Config::persona();
    c.console.enabled = false;
    c.echo.enabled = false;
    c.pubsub.enabled = false;
    c.pairing.enabled = false;
    c.rtc.enabled = true;
    c.rtc.prefix = String::new();
    c.rtc.call_page = false;
    c.server.listen = if args.listen.is_empty() {
        vec![DEFAULT_LISTEN.into()]
    } else {
        args.listen.clone()
    };
    if let Some(url) = &args.store {
        c.store.url = url.clone();
    }
    if let Some(s) = &args.cookie_secret {
        c.rtc.cookie_secret = s.clone();
    }
    if let Some(t) = &args.admin_token {
        c.rtc.admin_token = t.clone();
    }
    if !args.trusted_proxies.is_empty() {
        c.server.trusted_proxies.clone_from(&args.trusted_proxies);
    }
    match args.ops_listen.as_deref() {
        Some("off") => c.ops.enabled = false,
        Some(addr) => c.ops.listen = addr.to_owned(),
        None => {}
    }
    c.validate()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let c = config(&SignalServerArgs::default()).unwrap();
        assert_eq!(c.server.listen, ["0.0.0.0:8000"]);
        assert!(c.rtc.enabled);
        assert_eq!(c.rtc.prefix, "");
        assert!(!c.rtc.call_page);
        assert!(!c.pubsub.enabled && !c.console.enabled && !c.pairing.enabled);
        assert_eq!(c.store.resolved_url(), "sqlite:./switchboard.sqlite3");
        assert!(c.rtc.cookie_secret.is_empty());
    }

    #[test]
    fn flags_map_onto_the_config() {
        let c = config(&SignalServerArgs {
            listen: vec!["127.0.0.1:0".into()],
            store: Some("sqlite:/tmp/names.db".into()),
            cookie_secret: Some("0123456789abcdef".into()),
            admin_token: Some("fedcba9876543210".into()),
            ops_listen: Some("off".into()),
            trusted_proxies: vec!["127.0.0.1".into()],
        })
        .unwrap();
        assert_eq!(c.server.listen, ["127.0.0.1:0"]);
        assert_eq!(c.store.resolved_url(), "sqlite:/tmp/names.db");
        assert_eq!(c.rtc.cookie_secret, "0123456789abcdef");
        assert_eq!(c.rtc.admin_token, "fedcba9876543210");
        assert!(!c.ops.enabled);
        assert_eq!(c.server.trusted_proxies, ["127.0.0.1"]);
        let bad = config(&SignalServerArgs {
            cookie_secret: Some("short".into()),
            ..SignalServerArgs::default()
        });
        assert!(bad.unwrap_err().to_string().contains("rtc.cookie_secret"));
    }
}
