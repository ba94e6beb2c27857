//! The Dockerflow endpoints the channelserver deployment is monitored with:
//! `/__heartbeat__` (200 `{"version":…,"status":"ok"}`), `/__lbheartbeat__`
//! (200, empty) and `/__version__` (200, `{"build","commit","source","version"}`).
//! GET only: any other method (HEAD included, as in the original) gets 405.
//!
//! `/__version__` reports what the build was given: `SWITCHBOARD_BUILD`,
//! `SWITCHBOARD_COMMIT` and `SWITCHBOARD_SOURCE` at compile time, `"TBD"` when
//! unset (the value the original ships until its CI fills in `version.json`).

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, header};

/// The build description served at `/__version__`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionInfo {
    /// The CI build id or URL.
    pub build: String,
    /// The source commit.
    pub commit: String,
    /// Where the source lives.
    pub source: String,
    /// The release version.
    pub version: String,
}

impl Default for VersionInfo {
    /// What this binary was compiled with.
    fn default() -> Self {
        let or_tbd = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("TBD").to_owned();
        VersionInfo {
            build: or_tbd(option_env!("SWITCHBOARD_BUILD")),
            commit: or_tbd(option_env!("SWITCHBOARD_COMMIT")),
            source: or_tbd(option_env!("SWITCHBOARD_SOURCE")),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The three routes, at the root.
pub fn router(info: VersionInfo) -> Router {
    let heartbeat = serde_json::json!({ "version": info.version, "status": "ok" }).to_string();
    let version = serde_json::to_string(&info).unwrap_or_default();
    Router::new()
        .route(
            "/__heartbeat__",
            any(move |req: Request| {
                let body = heartbeat.clone();
                async move { get_only(&req, || json(body)) }
            }),
        )
        .route(
            "/__lbheartbeat__",
            any(|req: Request| async move { get_only(&req, || Response::new(Body::empty())) }),
        )
        .route(
            "/__version__",
            any(move |req: Request| {
                let body = version.clone();
                async move { get_only(&req, || json(body)) }
            }),
        )
}

fn get_only(req: &Request, ok: impl FnOnce() -> Response) -> Response {
    if req.method() == Method::GET {
        return ok();
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    r
}

fn json(body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_info_has_the_four_keys() {
        let v = serde_json::to_value(VersionInfo::default()).expect("json");
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["build", "commit", "source", "version"]);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
}
