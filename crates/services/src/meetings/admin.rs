//! The native-mode setup API, for operators (loopback, or `Authorization:
//! Bearer <admin token>`): create meetings and members, hand out keys, name
//! admins, read a meeting's log (JSON or `Time;Sender;Text` CSV as
//! pgeu-system exports it) and the status report.
//!
//! | request | answer |
//! |---|---|
//! | `POST {base}/meetings` `{"name"}` | `201 {"id"}` |
//! | `POST {base}/members` `{"name"}` | `201 {"id"}` |
//! | `POST {base}/meetings/{id}/keys` `{"member","proxy"?}` | `201 {"id","key","page"}` |
//! | `POST {base}/meetings/{id}/admins` `{"member"}` | `204` |
//! | `GET {base}/meetings/{id}/log[?format=csv]` | the log |
//! | `GET {base}/status` | the `/__meetingstatus` report |

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use http::{HeaderValue, header};
use metrics::counter;
use serde::Deserialize;
use switchboard_core::secret::same_secret;
use switchboard_core::store::StoreError;
use switchboard_core::store::meetings::{MeetingAdmin, MeetingId};
use switchboard_edge::client_ip::TrustedProxies;
use switchboard_edge::{PeerAddr, text_response};

use super::{Meetings, SERVICE};

/// Where the setup API is mounted natively.
pub const API_BASE: &str = "/meeting/api";

/// Who may call the setup API.
#[derive(Debug, Clone, Default)]
pub struct AdminAccess {
    /// A token accepted from anywhere as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Whether loopback (and unix socket) clients need no token.
    pub from_loopback: bool,
    /// Whose `X-Forwarded-For` names the client (`server.trusted_proxies`); see
    /// [`TrustedProxies::is_local`] for what counts as loopback.
    pub trusted_proxies: TrustedProxies,
}

#[derive(Debug)]
struct Api {
    svc: Arc<Meetings>,
    admin: Arc<dyn MeetingAdmin>,
    access: AdminAccess,
    /// Where meeting pages live (for the `page` link of a new key).
    page_base: String,
}

/// The setup API under `base` (for example `/meeting/api`), or `None` when the
/// service has no [`MeetingAdmin`] (pgeu-system mode).
pub fn router(
    svc: Arc<Meetings>,
    base: &str,
    page_base: &str,
    access: AdminAccess,
) -> Option<Router> {
    let admin = svc.admin.clone()?;
    let api = Arc::new(Api {
        svc,
        admin,
        access,
        page_base: page_base.to_owned(),
    });
    Some(
        Router::new()
            .route(&format!("{base}/meetings"), post(create_meeting))
            .route(&format!("{base}/members"), post(create_member))
            .route(&format!("{base}/meetings/{{id}}/keys"), post(issue_key))
            .route(&format!("{base}/meetings/{{id}}/admins"), post(add_admin))
            .route(&format!("{base}/meetings/{{id}}/log"), get(log))
            .route(&format!("{base}/status"), get(status))
            .layer(axum::middleware::from_fn_with_state(api.clone(), guard))
            .with_state(api),
    )
}

async fn guard(
    State(api): State<Arc<Api>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let local = req.extensions().get::<PeerAddr>().is_some_and(|p| {
        api.access
            .trusted_proxies
            .is_local(p.0.map(|a| a.ip()), req.headers())
    });
    let token_ok = api.access.token.as_deref().is_some_and(|t| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|got| same_secret(got.as_bytes(), t.as_bytes()))
    });
    if !(token_ok || (local && api.access.from_loopback)) {
        counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "admin_forbidden").increment(1);
        return text_response(StatusCode::FORBIDDEN, "Forbidden\n");
    }
    next.run(req).await
}

fn store_error(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "meetings admin API: store error");
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "store")
        .increment(1);
    text_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is not available\n",
    )
}

fn bad_request(msg: &str) -> Response {
    counter!("switchboard_http_errors_total", "service" => SERVICE, "reason" => "bad_request")
        .increment(1);
    text_response(StatusCode::BAD_REQUEST, format!("{msg}\n"))
}

fn created(v: serde_json::Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

/// A fresh meeting key: 40 random bytes, URL-safe base64 without padding
/// (54 characters), as pgeu-system makes them.
pub fn new_key() -> String {
    let bytes: [u8; 40] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

async fn create_meeting(
    State(api): State<Arc<Api>>,
    body: Result<axum::Json<Named>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else {
        return bad_request("expected {\"name\": \"…\"}");
    };
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return bad_request("name must be 1 to 100 bytes");
    }
    match api.admin.create_meeting(&b.name).await {
        Ok(id) => created(serde_json::json!({ "id": id })),
        Err(e) => store_error(&e),
    }
}

async fn create_member(
    State(api): State<Arc<Api>>,
    body: Result<axum::Json<Named>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else {
        return bad_request("expected {\"name\": \"…\"}");
    };
    if b.name.trim().is_empty() || b.name.len() > 500 {
        return bad_request("name must be 1 to 500 bytes");
    }
    match api.admin.create_member(&b.name).await {
        Ok(id) => created(serde_json::json!({ "id": id })),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    member: i64,
    proxy: Option<String>,
}

async fn issue_key(
    State(api): State<Arc<Api>>,
    Path(id): Path<MeetingId>,
    body: Result<axum::Json<KeyRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else {
        return bad_request("expected {\"member\": ID, \"proxy\": \"…\" (optional)}");
    };
    let key = new_key();
    match api
        .admin
        .issue_key(id, b.member, &key, b.proxy.as_deref())
        .await
    {
        Ok(key_id) => created(serde_json::json!({
            "id": key_id,
            "key": key,
            "page": format!("{}/{id}/{key}", api.page_base),
        })),
        Err(StoreError::Backend { .. }) => bad_request("no such meeting or member"),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRequest {
    member: i64,
}

async fn add_admin(
    State(api): State<Arc<Api>>,
    Path(id): Path<MeetingId>,
    body: Result<axum::Json<AdminRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else {
        return bad_request("expected {\"member\": ID}");
    };
    match api.admin.add_admin(id, b.member).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(StoreError::Backend { .. }) => bad_request("no such meeting or member"),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    format: Option<String>,
}

async fn log(
    State(api): State<Arc<Api>>,
    Path(id): Path<MeetingId>,
    Query(q): Query<LogQuery>,
) -> Response {
    let lines = match api.svc.store.lines_after(id, 0).await {
        Ok(l) => l,
        Err(e) => return store_error(&e),
    };
    if q.format.as_deref() == Some("csv") {
        let mut out = String::from("Time;Sender;Text\r\n");
        for l in &lines {
            out.push_str(&format!(
                "{} {};{};{}\r\n",
                l.stored.date,
                l.stored.time,
                csv_field(&l.sender_name),
                csv_field(&l.text)
            ));
        }
        let mut r = out.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return r;
    }
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "id": l.stored.id,
                "date": l.stored.date,
                "time": l.stored.time,
                "sender": l.sender_name,
                "message": l.text,
            })
        })
        .collect();
    axum::Json(rows).into_response()
}

/// A CSV field for `;`-separated output: quoted when it holds `;`, `"` or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

async fn status(State(api): State<Arc<Api>>) -> Response {
    api.svc.status_report().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_pgeu_systems() {
        let k = new_key();
        assert_eq!(k.len(), 54);
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(new_key(), k);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
