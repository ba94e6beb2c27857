//! `/turn/credentials`: short-lived TURN credentials in the TURN REST scheme
//! (draft-uberti-behave-turn-rest) that coturn's `use-auth-secret` checks:
//! username `<unix expiry>:<user>`, password base64(HMAC-SHA1(secret,
//! username)), valid for [`TTL`] (the original's fixed 24 h).
//!
//! Contract of [`answer`]: the query's `service` must be `turn` and its key
//! (`key`, or `api`) present, else 400; a key other than the configured API
//! key is 403 (compared in constant time); no configured TURN servers is
//! 404; otherwise 200 with `{"username","password","ttl","uris"}`. A missing
//! `username` gets 32 random characters instead.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::Rng as _;
use sha1::Sha1;

/// How long credentials are valid (the original: fixed, 24 h).
pub const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The `[turn]` settings.
#[derive(Clone, Default)]
pub struct TurnConfig {
    /// The key callers present (`apikey`).
    pub api_key: String,
    /// The secret shared with the TURN servers.
    pub secret: Vec<u8>,
    /// TURN URIs handed out (`turn:host:3478?transport=udp`, …).
    pub servers: Vec<String>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("api_key", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("servers", &self.servers)
            .finish()
    }
}

/// The JSON answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TurnCredentials {
    /// `<unix expiry>:<user>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// Seconds the credentials are valid.
    pub ttl: u64,
    /// The configured TURN URIs.
    pub uris: Vec<String>,
}

/// Why a request gets no credentials; [`TurnError::status`] is the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// `service` is missing or not `turn`.
    #[error("Invalid service")]
    InvalidService,
    /// Neither `key` nor `api` was given.
    #[error("Missing key")]
    MissingKey,
    /// The key is not the configured API key.
    #[error("Invalid key")]
    WrongKey,
    /// No TURN servers are configured.
    #[error("No TURN servers available")]
    NoServers,
}

impl TurnError {
    /// The HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            TurnError::InvalidService | TurnError::MissingKey => 400,
            TurnError::WrongKey => 403,
            TurnError::NoServers => 404,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TurnError::InvalidService => "invalid_service",
            TurnError::MissingKey => "missing_key",
            TurnError::WrongKey => "wrong_key",
            TurnError::NoServers => "no_servers",
        }
    }
}

/// Credentials for `user`, expiring `ttl` after `now_unix`.
pub fn credentials(cfg: &TurnConfig, user: &str, now_unix: u64, ttl: Duration) -> TurnCredentials {
    let username = format!("{}:{user}", now_unix + ttl.as_secs());
    let mut mac = Hmac::<Sha1>::new_from_slice(&cfg.secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    TurnCredentials {
        password: STANDARD.encode(mac.finalize().into_bytes()),
        username,
        ttl: ttl.as_secs(),
        uris: cfg.servers.clone(),
    }
}

/// Answers a `/turn/credentials` query (its decoded parameters) at `now_unix`.
pub fn answer(
    cfg: &TurnConfig,
    query: &HashMap<String, String>,
    now_unix: u64,
) -> Result<TurnCredentials, TurnError> {
    if query.get("service").map(String::as_str) != Some("turn") {
        return Err(TurnError::InvalidService);
    }
    let key = query
        .get("key")
        .or_else(|| query.get("api"))
        .filter(|k| !k.is_empty())
        .ok_or(TurnError::MissingKey)?;
    if cfg.api_key.is_empty()
        || !switchboard_core::secret::same_secret(key.as_bytes(), cfg.api_key.as_bytes())
    {
        return Err(TurnError::WrongKey);
    }
    if cfg.servers.is_empty() {
        return Err(TurnError::NoServers);
    }
    let user = match query.get("username").filter(|u| !u.is_empty()) {
        Some(u) => u.clone(),
        None => random_user(),
    };
    Ok(credentials(cfg, &user, now_unix, TTL))
}

fn random_user() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TurnConfig {
        TurnConfig {
            api_key: "the-api-key".into(),
            secret: b"turn-secret".to_vec(),
            servers: vec!["turn:turn.example.com:3478?transport=udp".into()],
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let c = credentials(&cfg(), "alice", 1_700_000_000, TTL);
        assert_eq!(c.username, "1700086400:alice");
        assert_eq!(c.ttl, 86_400);
        assert_eq!(c.uris, ["turn:turn.example.com:3478?transport=udp"]);
        // Computed independently with `printf 1700086400:alice | openssl dgst -sha1 -hmac turn-secret -binary | base64`.
        assert_eq!(c.password, "5iY+IeUUagohcNcZFo30lkvz3YM=");
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(
            json.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec![
                "password".into(),
                "ttl".into(),
                "uris".into(),
                "username".into()
            ])
        );
    }

    #[test]
    fn answers_and_refusals() {
        let now = 1_700_000_000;
        let ok = answer(
            &cfg(),
            &query(&[
                ("service", "turn"),
                ("username", "bob"),
                ("key", "the-api-key"),
            ]),
            now,
        )
        .expect("ok");
        assert_eq!(ok.username, "1700086400:bob");
        let api = answer(
            &cfg(),
            &query(&[
                ("service", "turn"),
                ("username", "bob"),
                ("api", "the-api-key"),
            ]),
            now,
        )
        .expect("api= works as key=");
        assert_eq!(api, ok);
        let anon = answer(
            &cfg(),
            &query(&[("service", "turn"), ("key", "the-api-key")]),
            now,
        )
        .expect("ok");
        let user = anon.username.strip_prefix("1700086400:").expect("expiry");
        assert_eq!(user.len(), 32);

        let err = |q: &[(&str, &str)], c: &TurnConfig| answer(c, &query(q), now).unwrap_err();
        let e = err(&[("service", "stun"), ("key", "the-api-key")], &cfg());
        assert_eq!((e, e.status()), (TurnError::InvalidService, 400));
        assert_eq!(
            err(&[("key", "the-api-key")], &cfg()),
            TurnError::InvalidService
        );
        let e = err(&[("service", "turn")], &cfg());
        assert_eq!((e, e.status()), (TurnError::MissingKey, 400));
        let e = err(&[("service", "turn"), ("key", "wrong")], &cfg());
        assert_eq!((e, e.status()), (TurnError::WrongKey, 403));
        let no_key = TurnConfig {
            api_key: String::new(),
            ..cfg()
        };
        assert_eq!(
            err(&[("service", "turn"), ("key", "x")], &no_key),
            TurnError::WrongKey
        );
        let no_servers = TurnConfig {
            servers: Vec::new(),
            ..cfg()
        };
        let e = err(&[("service", "turn"), ("key", "the-api-key")], &no_servers);
        assert_eq!((e, e.status()), (TurnError::NoServers, 404));
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let text = format!("{:?}", cfg());
        assert!(
            !text.contains("the-api-key") && !text.contains("turn-secret"),
            "{text}"
        );
    }
}
