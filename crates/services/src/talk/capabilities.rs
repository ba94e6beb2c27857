//! A Nextcloud backend's capabilities (`GET <base>ocs/v2.php/cloud/capabilities`),
//! fetched and cached per base URL: the hello v2 token key
//! (`spreed.config.signaling["hello-v2-token-key"]`), whether the backend
//! wants the v3 signaling path (`spreed.features` has `signaling-v3`), and
//! `session-ping-limit`.
//!
//! Contract of [`CapabilitiesCache::get`]: an entry younger than its time to
//! live (Cache-Control `max-age`, at least [`CapabilitiesCache::new`]'s
//! `min_ttl`, 60 s by default) is answered from the cache; an older one is
//! revalidated with `If-None-Match: <etag>`, and `304 Not Modified` keeps it
//! (with a new time to live). [`CapabilitiesCache::hello_v2_key`] fetches
//! again once, ignoring the time to live, when a cached entry lacks the key
//! (Nextcloud may have generated it since). Concurrent misses for one URL
//! may each fetch (no request coalescing: capabilities are small and rare).
//! It is called from tasks, never from the hub's loop; failures are logged
//! with the URL and the cause, counted in
//! `switchboard_talk_capabilities_requests_total`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::counter;
use serde_json::Value;
use tokio::time::Instant;

/// The path below a backend's base URL.
pub const CAPABILITIES_PATH: &str = "ocs/v2.php/cloud/capabilities";

/// The shortest time an answer is cached (the original: 60 s).
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// What we use of a backend's capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `spreed.features`.
    pub features: Vec<String>,
    /// `spreed.config.signaling["hello-v2-token-key"]`, as published (PEM or base64).
    pub hello_v2_key: Option<String>,
    /// `spreed.config.signaling["session-ping-limit"]` (0: no limit).
    pub session_ping_limit: u64,
}

impl Capabilities {
    /// Whether `spreed.features` lists `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether calls go to the `/api/v3/` signaling path (`signaling-v3`).
    pub fn signaling_v3(&self) -> bool {
        self.has_feature("signaling-v3")
    }

    /// Reads the OCS envelope's capabilities. A Nextcloud without Talk has
    /// no `spreed` object (PHP sends an empty array): empty capabilities.
    pub fn from_ocs(body: &[u8]) -> Option<Capabilities> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let caps = v.pointer("/ocs/data/capabilities")?;
        let Some(spreed) = caps.get("spreed").filter(|s| s.is_object()) else {
            return Some(Capabilities::default());
        };
        let features = spreed
            .get("features")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let signaling = spreed.pointer("/config/signaling");
        let hello_v2_key = signaling
            .and_then(|s| s.get("hello-v2-token-key"))
            .and_then(Value::as_str)
            .filter(|k| !k.trim().is_empty())
            .map(str::to_owned);
        let session_ping_limit = signaling
            .and_then(|s| s.get("session-ping-limit"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Some(Capabilities {
            features,
            hello_v2_key,
            session_ping_limit,
        })
    }
}

/// Why capabilities could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilitiesError {
    /// No answer (connection refused, DNS, TLS, timeout).
    #[error("cannot reach {url}: {cause}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        cause: String,
    },
    /// An HTTP status other than 200 or 304.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// Where.
        url: String,
        /// What.
        status: u16,
    },
    /// The body is not an OCS envelope with capabilities.
    #[error("{url} answered something that is not an OCS capabilities envelope")]
    NotOcs {
        /// Where.
        url: String,
    },
}

impl CapabilitiesError {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CapabilitiesError::Unreachable { .. } => "unreachable",
            CapabilitiesError::Status { .. } => "status",
            CapabilitiesError::NotOcs { .. } => "not_ocs",
        }
    }
}

#[derive(Debug)]
struct Entry {
    caps: Arc<Capabilities>,
    etag: Option<String>,
    fresh_until: Instant,
}

/// The per-backend cache; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct CapabilitiesCache {
    http: reqwest::Client,
    min_ttl: Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl CapabilitiesCache {
    /// A cache whose requests time out after `timeout` and whose answers
    /// live at least `min_ttl` ([`MIN_TTL`] in production).
    pub fn new(timeout: Duration, min_ttl: Duration) -> Self {
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
        CapabilitiesCache {
            http,
            min_ttl,
            entries: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The capabilities of the backend at `base` (a base URL ending in `/`).
    pub async fn get(&self, base: &str) -> Result<Arc<Capabilities>, CapabilitiesError> {
        self.fetch(base, false).await.map(|(caps, _)| caps)
    }

    /// The hello v2 key of the backend at `base`: from the cache, or fetched
    /// again once when the cached capabilities have none.
    pub async fn hello_v2_key(&self, base: &str) -> Result<Option<String>, CapabilitiesError> {
        let (caps, fetched) = self.fetch(base, false).await?;
        if caps.hello_v2_key.is_some() || fetched {
            return Ok(caps.hello_v2_key.clone());
        }
        let (caps, _) = self.fetch(base, true).await?;
        Ok(caps.hello_v2_key.clone())
    }

    /// Returns the capabilities and whether they were just asked for.
    async fn fetch(
        &self,
        base: &str,
        force: bool,
    ) -> Result<(Arc<Capabilities>, bool), CapabilitiesError> {
        let etag = {
            let entries = self.lock();
            match entries.get(base) {
                Some(e) if !force && Instant::now() < e.fresh_until => {
                    return Ok((e.caps.clone(), false));
                }
                Some(e) => e.etag.clone(),
                None => None,
            }
        };
        let url = format!("{base}{CAPABILITIES_PATH}");
        let result = self.request(&url, etag.as_deref()).await;
        let outcome = match &result {
            Ok(Answer::NotModified { .. }) => "not_modified",
            Ok(Answer::Fresh { .. }) => "ok",
            Err(e) => e.label(),
        };
        counter!("switchboard_talk_capabilities_requests_total", "outcome" => outcome).increment(1);
        let answer = result.inspect_err(|e| {
            tracing::warn!(error = %e, "talk: capabilities request failed");
        })?;
        let mut entries = self.lock();
        match answer {
            Answer::NotModified { ttl } => {
                if let Some(e) = entries.get_mut(base) {
                    e.fresh_until = Instant::now() + ttl;
                    return Ok((e.caps.clone(), true));
                }
                // A 304 without anything cached (we sent no ETag): not a valid answer.
                Err(CapabilitiesError::Status { url, status: 304 })
            }
            Answer::Fresh { caps, etag, ttl } => {
                let caps = Arc::new(caps);
                entries.insert(
                    base.to_owned(),
                    Entry {
                        caps: caps.clone(),
                        etag,
                        fresh_until: Instant::now() + ttl,
                    },
                );
                Ok((caps, true))
            }
        }
    }

    async fn request(&self, url: &str, etag: Option<&str>) -> Result<Answer, CapabilitiesError> {
        let mut req = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .header("OCS-APIRequest", "true");
        if let Some(etag) = etag {
            req = req.header("If-None-Match", etag);
        }
        let unreachable = |e: reqwest::Error| CapabilitiesError::Unreachable {
            url: url.to_owned(),
            cause: error_chain(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let ttl = max_age(resp.headers()).map_or(self.min_ttl, |a| a.max(self.min_ttl));
        match resp.status().as_u16() {
            304 => Ok(Answer::NotModified { ttl }),
            200 => {
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp.bytes().await.map_err(unreachable)?;
                let caps =
                    Capabilities::from_ocs(&body).ok_or_else(|| CapabilitiesError::NotOcs {
                        url: url.to_owned(),
                    })?;
                Ok(Answer::Fresh { caps, etag, ttl })
            }
            status => Err(CapabilitiesError::Status {
                url: url.to_owned(),
                status,
            }),
        }
    }
}

enum Answer {
    NotModified {
        ttl: Duration,
    },
    Fresh {
        caps: Capabilities,
        etag: Option<String>,
        ttl: Duration,
    },
}

/// `Cache-Control: max-age=N` (`no-cache`/`no-store` count as 0).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get("cache-control")?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        let (k, v) = d.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| {
                v.trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs)
            })
            .flatten()
    })
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};

    /// A stand-in Nextcloud serving capabilities the way Nextcloud does: an
    /// OCS envelope, an ETag, 304 for a matching If-None-Match, and 400
    /// without `OCS-APIRequest: true`.
    #[derive(Default)]
    struct Nextcloud {
        requests: AtomicUsize,
        revalidations: AtomicUsize,
        key: Mutex<Option<String>>,
        cache_control: Mutex<Option<String>>,
    }

    impl Nextcloud {
        fn body(&self) -> (String, String) {
            let key = self.key.lock().expect("lock").clone();
            let mut signaling = serde_json::json!({"session-ping-limit": 200});
            if let Some(k) = key {
                signaling["hello-v2-token-key"] = k.into();
            }
            let body = serde_json::json!({"ocs": {
                "meta": {"status": "ok", "statuscode": 200, "message": "OK"},
                "data": {"version": {"major": 31}, "capabilities": {
                    "core": {"pollinterval": 60},
                    "spreed": {"features": ["audio", "signaling-v3", "federation-v2"],
                               "config": {"signaling": signaling}},
                }},
            }})
            .to_string();
            let etag = format!(
                "\"{:x}\"",
                body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()
            );
            (body, etag)
        }
    }

    async fn capabilities(State(nc): State<Arc<Nextcloud>>, headers: HeaderMap) -> Response {
        nc.requests.fetch_add(1, Ordering::SeqCst);
        if headers.get("ocs-apirequest").and_then(|v| v.to_str().ok()) != Some("true") {
            return (StatusCode::BAD_REQUEST, "CSRF check failed").into_response();
        }
        let (body, etag) = nc.body();
        let mut extra = vec![("etag".to_owned(), etag.clone())];
        if let Some(cc) = nc.cache_control.lock().expect("lock").clone() {
            extra.push(("cache-control".into(), cc));
        }
        let mut resp =
            if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                nc.revalidations.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                ([("content-type", "application/json")], body).into_response()
            };
        for (k, v) in extra {
            resp.headers_mut().insert(
                axum::http::HeaderName::try_from(k).expect("name"),
                v.parse().expect("value"),
            );
        }
        resp
    }

    async fn serve(nc: Arc<Nextcloud>) -> String {
        let app = axum::Router::new()
            .route(
                "/nc/ocs/v2.php/cloud/capabilities",
                axum::routing::get(capabilities),
            )
            .with_state(nc);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/nc/")
    }

    #[tokio::test]
    async fn fetched_once_then_cached() {
        let nc = Arc::new(Nextcloud::default());
        *nc.key.lock().expect("lock") =
            Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
        let base = serve(nc.clone()).await;
        let cache = CapabilitiesCache::new(Duration::from_secs(5), MIN_TTL);
        let caps = cache.get(&base).await.expect("caps");
        assert!(caps.signaling_v3());
        assert!(caps.has_feature("federation-v2"));
        assert_eq!(caps.session_ping_limit, 200);
        assert!(
            caps.hello_v2_key
                .as_deref()
                .is_some_and(|k| k.starts_with("-----BEGIN PUBLIC KEY"))
        );
        let again = cache.get(&base).await.expect("caps");
        assert!(Arc::ptr_eq(&caps, &again), "answered from the cache");
        assert_eq!(
            cache.hello_v2_key(&base).await.expect("key"),
            caps.hello_v2_key
        );
        assert_eq!(nc.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_entry_is_revalidated_with_its_etag() {
        let nc = Arc::new(Nextcloud::default());
        let base = serve(nc.clone()).await;
        // No minimum: every call revalidates.
        let cache = CapabilitiesCache::new(Duration::from_secs(5), Duration::ZERO);
        let first = cache.get(&base).await.expect("caps");
        let second = cache.get(&base).await.expect("caps");
        assert!(Arc::ptr_eq(&first, &second), "304 keeps the cached value");
        assert_eq!(nc.requests.load(Ordering::SeqCst), 2);
        assert_eq!(nc.revalidations.load(Ordering::SeqCst), 1);
        // Changed capabilities: a new ETag, so a 200 with the new content.
        *nc.key.lock().expect("lock") = Some("a2V5".into());
        let third = cache.get(&base).await.expect("caps");
        assert_eq!(third.hello_v2_key.as_deref(), Some("a2V5"));
        assert_eq!(nc.revalidations.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn cache_control_max_age_extends_but_never_shortens_the_minimum() {
        let nc = Arc::new(Nextcloud::default());
        *nc.cache_control.lock().expect("lock") = Some("private, max-age=3600".into());
        let base = serve(nc.clone()).await;
        let cache = CapabilitiesCache::new(Duration::from_secs(5), Duration::ZERO);
        cache.get(&base).await.expect("caps");
        cache.get(&base).await.expect("caps");
        assert_eq!(nc.requests.load(Ordering::SeqCst), 1, "max-age=3600 holds");

        let mut h = reqwest::header::HeaderMap::new();
        h.insert("cache-control", "no-cache".parse().expect("v"));
        assert_eq!(max_age(&h), Some(Duration::ZERO));
        h.insert(
            "cache-control",
            "public, max-age=\"90\"".parse().expect("v"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(90)));
        h.insert("cache-control", "public".parse().expect("v"));
        assert_eq!(max_age(&h), None);
    }

    #[tokio::test]
    async fn a_missing_key_is_fetched_again_once() {
        let nc = Arc::new(Nextcloud::default());
        let base = serve(nc.clone()).await;
        let cache = CapabilitiesCache::new(Duration::from_secs(5), MIN_TTL);
        // Just fetched and no key: no second request.
        assert_eq!(cache.hello_v2_key(&base).await.expect("ok"), None);
        assert_eq!(nc.requests.load(Ordering::SeqCst), 1);
        // Nextcloud has made a key since: the cached entry lacks it, one refetch finds it.
        *nc.key.lock().expect("lock") = Some("a2V5".into());
        assert_eq!(
            cache.hello_v2_key(&base).await.expect("ok").as_deref(),
            Some("a2V5")
        );
        assert_eq!(nc.requests.load(Ordering::SeqCst), 2);
        assert_eq!(
            cache
                .get(&base)
                .await
                .expect("caps")
                .hello_v2_key
                .as_deref(),
            Some("a2V5")
        );
        assert_eq!(
            nc.requests.load(Ordering::SeqCst),
            2,
            "the refetch refreshed the cache"
        );
    }

    #[tokio::test]
    async fn failures_name_the_url() {
        // A port that was just free: nothing listens there.
        let free = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = free.local_addr().expect("addr");
        drop(free);
        let cache = CapabilitiesCache::new(Duration::from_secs(5), MIN_TTL);
        let err = cache.get(&format!("http://{addr}/")).await.unwrap_err();
        assert_eq!(err.label(), "unreachable");
        assert!(
            err.to_string()
                .contains(&format!("http://{addr}/ocs/v2.php/cloud/capabilities")),
            "{err}"
        );

        let nc = Arc::new(Nextcloud::default());
        let base = serve(nc).await;
        let wrong = base.replace("/nc/", "/other/");
        let err = cache.get(&wrong).await.unwrap_err();
        assert_eq!(
            err,
            CapabilitiesError::Status {
                url: format!("{wrong}{CAPABILITIES_PATH}"),
                status: 404
            }
        );
    }

    #[test]
    fn envelopes() {
        let no_talk = br#"{"ocs":{"meta":{"statuscode":200},"data":{"capabilities":{"core":{},"spreed":[]}}}}"#;
        assert_eq!(
            Capabilities::from_ocs(no_talk),
            Some(Capabilities::default())
        );
        assert_eq!(Capabilities::from_ocs(b"<html>"), None);
        assert_eq!(Capabilities::from_ocs(br#"{"ocs":{"data":{}}}"#), None);
        let blank_key = br#"{"ocs":{"data":{"capabilities":{"spreed":{"features":["signaling-v3"],"config":{"signaling":{"hello-v2-token-key":" "}}}}}}}"#;
        let caps = Capabilities::from_ocs(blank_key).expect("caps");
        assert!(caps.signaling_v3());
        assert_eq!(caps.hello_v2_key, None);
    }
}
