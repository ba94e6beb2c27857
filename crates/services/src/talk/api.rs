//! The server API Nextcloud calls: `GET /api/v1/welcome` and the signed
//! `POST /api/v1/room/{roomid}`. Checks in the original's order: a length
//! (411), at most 256 KiB (413), a JSON content type (400), the random and
//! checksum headers (403), the backend named by `Spreed-Signaling-Backend`
//! (403 when unknown), the checksum (403), the JSON body (400); then the hub
//! carries out the request and the answer is `200 {}`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;
use metrics::counter;
use serde::Deserialize;

use super::Talk;
use super::hub::Cmd;
use super::wire::Raw;

/// Largest request body (the original's).
pub const MAX_BODY: usize = 256 * 1024;

/// Why the hub could not carry out a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A request type this server does not handle (yet).
    #[error("Unsupported request type: {0}")]
    Unsupported(String),
}

/// `invite`.
#[derive(Debug, Default, Deserialize)]
pub struct Invite {
    /// Users newly invited.
    #[serde(default)]
    pub userids: Vec<String>,
    /// Every user of the room.
    #[serde(default)]
    pub alluserids: Vec<String>,
    /// The room's properties.
    #[serde(default)]
    pub properties: Option<Raw>,
}

/// `disinvite`.
#[derive(Debug, Default, Deserialize)]
pub struct Disinvite {
    /// Users removed.
    #[serde(default)]
    pub userids: Vec<String>,
    /// Nextcloud sessions removed (guests).
    #[serde(default)]
    pub sessionids: Vec<String>,
    /// The users that remain.
    #[serde(default)]
    pub alluserids: Vec<String>,
    /// The room's properties.
    #[serde(default)]
    pub properties: Option<Raw>,
}

/// `update`.
#[derive(Debug, Default, Deserialize)]
pub struct Update {
    /// Users of the room.
    #[serde(default)]
    pub userids: Vec<String>,
    /// The new properties.
    #[serde(default)]
    pub properties: Option<Raw>,
}

/// `delete`.
#[derive(Debug, Default, Deserialize)]
pub struct Delete {
    /// Users of the room.
    #[serde(default)]
    pub userids: Vec<String>,
}

/// `participants`.
#[derive(Debug, Default, Deserialize)]
pub struct Participants {
    /// Entries that changed.
    #[serde(default)]
    pub changed: Vec<serde_json::Value>,
    /// Every participant.
    #[serde(default)]
    pub users: Vec<serde_json::Value>,
}

/// `incall`.
#[derive(Debug, Default, Deserialize)]
pub struct InCall {
    /// The flags (with `all`: for everybody).
    #[serde(default)]
    pub incall: i64,
    /// Whether every session of the room joins or leaves the call.
    #[serde(default)]
    pub all: bool,
    /// Entries that changed.
    #[serde(default)]
    pub changed: Vec<serde_json::Value>,
    /// Every participant.
    #[serde(default)]
    pub users: Vec<serde_json::Value>,
}

/// `message`.
#[derive(Debug, Default, Deserialize)]
pub struct RoomMessage {
    /// Forwarded to the room unchanged.
    #[serde(default)]
    pub data: Option<Raw>,
}

/// The body of `POST /api/v1/room/{roomid}`.
#[derive(Debug, Deserialize)]
pub struct RoomRequestBody {
    /// The request type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `invite`.
    #[serde(default)]
    pub invite: Option<Invite>,
    /// For `disinvite`.
    #[serde(default)]
    pub disinvite: Option<Disinvite>,
    /// For `update`.
    #[serde(default)]
    pub update: Option<Update>,
    /// For `delete`.
    #[serde(default)]
    pub delete: Option<Delete>,
    /// For `participants`.
    #[serde(default)]
    pub participants: Option<Participants>,
    /// For `incall`.
    #[serde(default)]
    pub incall: Option<InCall>,
    /// For `message`.
    #[serde(default)]
    pub message: Option<RoomMessage>,
}

fn counted(outcome: &'static str, status: StatusCode, text: &str) -> Response {
    counter!("switchboard_talk_api_requests_total", "outcome" => outcome).increment(1);
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn json(status: StatusCode, body: String, features: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(features) {
        h.insert("x-spreed-signaling-features", v);
    }
    r
}

impl Talk {
    /// `GET /api/v1/welcome`.
    pub(super) fn welcome(&self) -> Response {
        let body = serde_json::json!({
            "nextcloud-spreed-signaling": "Welcome",
            "version": self.cfg.version,
        });
        json(StatusCode::OK, body.to_string(), &self.features_header())
    }

    /// `POST /api/v1/room/{roomid}`.
    pub(super) async fn room_request(&self, roomid: &str, req: axum::extract::Request) -> Response {
        let headers: HeaderMap = req.headers().clone();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let Some(length) = length else {
            return counted(
                "length_required",
                StatusCode::LENGTH_REQUIRED,
                "Length required",
            );
        };
        if length > MAX_BODY {
            return counted(
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request entity too large",
            );
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return counted(
                "content_type",
                StatusCode::BAD_REQUEST,
                "Unsupported Content-Type",
            );
        }
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (Some(random), Some(checksum)) = (
            text("spreed-signaling-random"),
            text("spreed-signaling-checksum"),
        ) else {
            return counted(
                "forbidden",
                StatusCode::FORBIDDEN,
                "Authentication check failed",
            );
        };
        let named = text("spreed-signaling-backend");
        let Some(backend) = self.cfg.hub.backends.for_header(named.as_deref()) else {
            tracing::info!(backend = ?named, "talk: room request from a backend that is not configured");
            return counted(
                "forbidden",
                StatusCode::FORBIDDEN,
                "Authentication check failed",
            );
        };
        let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return counted(
                    "bad_request",
                    StatusCode::BAD_REQUEST,
                    "Could not read body",
                );
            }
        };
        if !backend.verify(&random, &body, &checksum) {
            return counted(
                "forbidden",
                StatusCode::FORBIDDEN,
                "Authentication check failed",
            );
        }
        let request: RoomRequestBody = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => {
                return counted(
                    "bad_request",
                    StatusCode::BAD_REQUEST,
                    "Could not read body",
                );
            }
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        self.hub
            .send(Cmd::Room {
                backend,
                roomid: roomid.to_owned(),
                request: Box::new(request),
                done,
            })
            .await;
        match answer.await {
            Ok(Ok(())) => {
                counter!("switchboard_talk_api_requests_total", "outcome" => "ok").increment(1);
                json(StatusCode::OK, "{}".into(), &self.features_header())
            }
            Ok(Err(e)) => counted("unsupported", StatusCode::BAD_REQUEST, &e.to_string()),
            Err(_) => counted(
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
            ),
        }
    }
}
