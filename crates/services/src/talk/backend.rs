//! The Nextcloud backends: which ones are configured (and which one a
//! client's URL or a request's `Spreed-Signaling-Backend` header names), the
//! request checksum both directions use (hex HMAC-SHA256 of random + body
//! with the backend's secret), and [`BackendClient`], which calls a backend's
//! signaling endpoint and unwraps its OCS envelope.
//!
//! Contract of [`BackendClient::call`]: one signed POST, at most
//! `max_per_host` at once per host (more wait their turn), bounded by the
//! timeout; an unreachable Nextcloud is logged once per call with the URL and
//! the cause (the original's most common support problem), never the body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use metrics::counter;
use rand::Rng as _;
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio::sync::Semaphore;

/// The path of the signaling endpoint below a backend's base URL.
pub const SIGNALING_PATH: &str = "ocs/v2.php/apps/spreed/api/v1/signaling/backend";

/// One configured Nextcloud.
#[derive(Clone)]
pub struct Backend {
    /// Its id (the config's name; empty for `allowall`).
    pub id: String,
    /// Base URLs it serves, each ending in `/`.
    pub urls: Vec<String>,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Backend {
    /// A backend with its base URLs (a missing trailing `/` is added).
    pub fn new(id: impl Into<String>, urls: Vec<String>, secret: impl Into<Vec<u8>>) -> Self {
        let urls = urls
            .into_iter()
            .map(|mut u| {
                if !u.ends_with('/') {
                    u.push('/');
                }
                u
            })
            .collect();
        Backend {
            id: id.into(),
            urls,
            secret: secret.into(),
        }
    }

    /// Whether `base` (a canonical base URL) belongs to this backend: one of
    /// its URLs is a prefix of it, scheme included (so plain http only where
    /// the configured URL is http).
    fn serves(&self, base: &str) -> bool {
        self.urls.iter().any(|u| base.starts_with(u.as_str()))
    }

    /// The checksum of `random` + `body` under this backend's secret.
    pub fn checksum(&self, random: &str, body: &[u8]) -> String {
        checksum(&self.secret, random, body)
    }

    /// Whether `given` is the right checksum (constant-time).
    pub fn verify(&self, random: &str, body: &[u8], given: &str) -> bool {
        let want = self.checksum(random, body);
        switchboard_core::secret::same_secret(given.as_bytes(), want.as_bytes())
    }
}

/// Hex HMAC-SHA256(`secret`, `random` ‖ `body`).
pub fn checksum(secret: &[u8], random: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(random.as_bytes());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The configured backends.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    list: Vec<Arc<Backend>>,
    /// `allowall`: any URL, with this (common-secret) backend.
    allow_all: Option<Arc<Backend>>,
}

impl Backends {
    /// Exactly these backends.
    pub fn new(list: Vec<Backend>) -> Self {
        Backends {
            list: list.into_iter().map(Arc::new).collect(),
            allow_all: None,
        }
    }

    /// Every URL accepted with one common secret (development and benchmarks only).
    pub fn allow_all(secret: impl Into<Vec<u8>>) -> Self {
        Backends {
            list: Vec::new(),
            allow_all: Some(Arc::new(Backend::new("", Vec::new(), secret))),
        }
    }

    /// The backend serving the canonical base URL `base`.
    pub fn for_url(&self, base: &str) -> Option<Arc<Backend>> {
        self.list
            .iter()
            .find(|b| b.serves(base))
            .or(self.allow_all.as_ref())
            .cloned()
    }

    /// The backend a server-API request names in `Spreed-Signaling-Backend`
    /// (absent: the `allowall` backend, if any).
    pub fn for_header(&self, header: Option<&str>) -> Option<Arc<Backend>> {
        match header {
            Some(h) => super::wire::base_url(h).and_then(|b| self.for_url(&b)),
            None => self.allow_all.clone(),
        }
    }

    /// How many are configured (not counting `allowall`).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is configured and `allowall` is off.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.allow_all.is_none()
    }
}

/// Why a call to Nextcloud failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No answer (connection refused, DNS, TLS, timeout).
    #[error("cannot reach {url}: {cause}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        cause: String,
    },
    /// An HTTP status other than 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// Where.
        url: String,
        /// What.
        status: u16,
    },
    /// The body was not an OCS envelope with `data`.
    #[error("{url} answered something that is not an OCS envelope")]
    NotOcs {
        /// Where.
        url: String,
    },
}

impl BackendError {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::Status { .. } => "status",
            BackendError::NotOcs { .. } => "not_ocs",
        }
    }
}

/// Calls Nextcloud's signaling endpoint.
#[derive(Debug, Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    max_per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    features: String,
}

#[derive(serde::Deserialize)]
struct Ocs {
    ocs: OcsInner,
}

#[derive(serde::Deserialize)]
struct OcsInner {
    data: Box<RawValue>,
}

impl BackendClient {
    /// A client with this per-request `timeout` and at most `max_per_host`
    /// concurrent requests per host; `features` goes in `X-Spreed-Signaling-Features`.
    pub fn new(timeout: Duration, max_per_host: usize, features: &[&str]) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // Nextcloud is called directly, never through a proxy from the environment.
            .no_proxy()
            .user_agent(concat!(
                "nextcloud-spreed-signaling/switchboard-",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .unwrap_or_default();
        BackendClient {
            http,
            max_per_host: max_per_host.max(1),
            hosts: Arc::default(),
            features: features.join(", "),
        }
    }

    fn slot(&self, url: &str) -> Arc<Semaphore> {
        let host = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.split('/').next().unwrap_or(rest))
            .to_owned();
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(host)
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_host)))
            .clone()
    }

    /// POSTs `body` to `base` + [`SIGNALING_PATH`] signed for `backend`, and
    /// returns the OCS envelope's `data`.
    pub async fn call(
        &self,
        backend: &Backend,
        base: &str,
        body: Vec<u8>,
    ) -> Result<Box<RawValue>, BackendError> {
        let url = format!("{base}{SIGNALING_PATH}");
        let random = random_token();
        let checksum = backend.checksum(&random, &body);
        let slot = self.slot(&url);
        let _permit = slot.acquire().await;
        let sent = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("OCS-APIRequest", "true")
            .header("X-Spreed-Signaling-Features", &self.features)
            .header("Spreed-Signaling-Random", &random)
            .header("Spreed-Signaling-Checksum", &checksum)
            .body(body)
            .send()
            .await;
        let result = match sent {
            Err(e) => Err(BackendError::Unreachable {
                url: url.clone(),
                cause: error_chain(&e),
            }),
            Ok(resp) if resp.status() != reqwest::StatusCode::OK => Err(BackendError::Status {
                url: url.clone(),
                status: resp.status().as_u16(),
            }),
            Ok(resp) => match resp.bytes().await {
                Err(e) => Err(BackendError::Unreachable {
                    url: url.clone(),
                    cause: error_chain(&e),
                }),
                Ok(bytes) => serde_json::from_slice::<Ocs>(&bytes)
                    .map(|o| o.ocs.data)
                    .map_err(|_| BackendError::NotOcs { url: url.clone() }),
            },
        };
        match &result {
            Ok(_) => {
                counter!("switchboard_talk_backend_requests_total", "outcome" => "ok").increment(1)
            }
            Err(e) => {
                counter!("switchboard_talk_backend_requests_total", "outcome" => e.label())
                    .increment(1);
                tracing::warn!(error = %e, "talk: backend request failed");
            }
        }
        result
    }
}

/// 64 random hex characters (the original's length).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_checksum_example_holds() {
        let body = br#"{"type":"auth","auth":{"version":"1.0","params":{"hello":"world"}}}"#;
        let random = "afb6b872ab03e3376b31bf0af601067222ff7990335ca02d327071b73c0119c6";
        assert_eq!(
            checksum(b"MySecretValue", random, body),
            "3c4a69ff328299803ac2879614b707c807b4758cf19450755c60656cac46e3bc"
        );
        let b = Backend::new(
            "b",
            vec!["https://cloud.example.com".into()],
            "MySecretValue",
        );
        assert!(b.verify(
            random,
            body,
            "3c4a69ff328299803ac2879614b707c807b4758cf19450755c60656cac46e3bc"
        ));
        assert!(!b.verify(random, body, "00"));
    }

    #[test]
    fn urls_pick_their_backend() {
        let backends = Backends::new(vec![
            Backend::new("one", vec!["https://one.example.com/".into()], "s1"),
            Backend::new("two", vec!["http://two.example.com/nc".into()], "s2"),
        ]);
        let id = |base: &str| backends.for_url(base).map(|b| b.id.clone());
        assert_eq!(id("https://one.example.com/").as_deref(), Some("one"));
        assert_eq!(
            id("http://one.example.com/"),
            None,
            "http where https is configured"
        );
        assert_eq!(id("http://two.example.com/nc/").as_deref(), Some("two"));
        assert_eq!(id("http://two.example.com/other/"), None);
        assert_eq!(id("https://three.example.com/"), None);
        let header = backends.for_header(Some("https://one.example.com"));
        assert_eq!(header.map(|b| b.id.clone()).as_deref(), Some("one"));
        assert!(backends.for_header(None).is_none());
        let all = Backends::allow_all("common");
        assert!(all.for_url("https://anything.example/").is_some());
        assert!(all.for_header(None).is_some());
    }

    #[test]
    fn random_tokens_are_64_hex_characters() {
        let t = random_token();
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, random_token());
    }
}
