//! The plain HTTP endpoints: health, registration, the session check and the
//! kick, plus [`Rtc::authenticate`], which the WebSocket handshake shares.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use switchboard_core::Disconnect;
use switchboard_core::secret::same_secret;
use switchboard_core::store::{Registered, StoreError};
use switchboard_edge::{PeerAddr, text_response};

use super::codes::{self, reason};
use super::identity::{CookieError, NameError, check_name};
use super::register::{self, MAX_BODY};
use super::wire::push_json_string;
use super::{NAMESPACE, Rtc};

/// Why a request does not belong to a registered user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The cookie is missing, garbled or forged.
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// The cookie names no registered user.
    #[error("no such user")]
    Unknown,
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// The metric label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            AuthError::Cookie(CookieError::Missing) => reason::NO_COOKIE,
            AuthError::Cookie(CookieError::Garbled) => reason::GARBLED_COOKIE,
            AuthError::Cookie(CookieError::Forged) => reason::FORGED_COOKIE,
            AuthError::Unknown => reason::UNKNOWN_USER,
            AuthError::Store(_) => reason::STORE,
        }
    }

    /// How a WebSocket is closed for it.
    pub(crate) fn disconnect(&self) -> Disconnect {
        match self {
            AuthError::Store(_) => codes::STORE_UNAVAILABLE,
            _ => codes::UNAUTHENTICATED,
        }
    }
}

/// `GET /healthcheck`.
pub(crate) fn healthcheck() -> Response {
    text_response(StatusCode::OK, "success")
}

/// A `{"status","message"}` reply, keys in the original's order.
fn status_reply(code: StatusCode, status: &str, message: &str) -> Response {
    let mut body = String::from("{\"status\":");
    push_json_string(&mut body, status);
    body.push_str(",\"message\":");
    push_json_string(&mut body, message);
    body.push('}');
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn invalid(code: StatusCode, why: &'static str, message: &str) -> Response {
    codes::reject(why);
    status_reply(code, "INVALID", message)
}

impl Rtc {
    /// The registered user the request's cookie names.
    pub(crate) async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<String, AuthError> {
        let name = self.cfg.identities.name_of(headers)?;
        if self.store.name_exists(NAMESPACE, name).await? {
            Ok(name.to_owned())
        } else {
            Err(AuthError::Unknown)
        }
    }

    /// `POST /v1/register`.
    pub(crate) async fn register(&self, req: Request) -> Response {
        if let Err(wait) = self.limiter.check(self.client_ip(&req), Instant::now()) {
            let mut r = invalid(
                StatusCode::TOO_MANY_REQUESTS,
                reason::RATE_LIMITED,
                "too many registrations, try again later",
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return r;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec());
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return invalid(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    reason::BODY_TOO_LARGE,
                    "body too large",
                );
            }
            Err(_) => {
                return invalid(
                    StatusCode::BAD_REQUEST,
                    reason::INVALID_BODY,
                    "invalid body",
                );
            }
        };
        let Ok(name) = register::username(content_type.as_deref(), &body) else {
            return invalid(
                StatusCode::BAD_REQUEST,
                reason::INVALID_BODY,
                "invalid body",
            );
        };
        if let Err(e) = check_name(&name) {
            let why = match e {
                NameError::Empty => reason::EMPTY_NAME,
                NameError::TooLong | NameError::Character => reason::INVALID_NAME,
            };
            return invalid(StatusCode::BAD_REQUEST, why, &e.to_string());
        }
        match self.store.register_name(NAMESPACE, &name).await {
            Ok(Registered::New) => {
                self.count_registration();
                let mut r = status_reply(StatusCode::OK, "SUCCESS", "");
                if let Some(cookie) = self.cfg.identities.set_cookie(&name) {
                    r.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                r
            }
            Ok(Registered::Taken) => status_reply(StatusCode::OK, "TAKEN", ""),
            Err(e) => {
                tracing::warn!(error = %e, "rtc: registration failed in the store");
                codes::reject(reason::STORE);
                status_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ERROR",
                    "registration is unavailable, try again later",
                )
            }
        }
    }

    /// `GET /v1/user`: 200 for a registered user, else 401 clearing cookies.
    pub(crate) async fn user(&self, headers: &http::HeaderMap) -> Response {
        match self.authenticate(headers).await {
            Ok(_) => text_response(StatusCode::OK, "OK"),
            Err(e @ AuthError::Store(_)) => {
                tracing::warn!(error = %e, "rtc: user check failed in the store");
                codes::reject(e.label());
                text_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            Err(e) => {
                codes::reject(e.label());
                let mut r = text_response(StatusCode::UNAUTHORIZED, "Unauthorized");
                r.headers_mut()
                    .insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
                r
            }
        }
    }

    /// Whether `req` may kick: the admin token (as `Authorization: Bearer` or
    /// `?token=`), or a loopback client when that is allowed.
    fn may_kick(&self, req: &Request) -> bool {
        if let Some(token) = &self.cfg.admin_token {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
            let query = req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("token="))
                    .map(|v| percent_encoding::percent_decode_str(v).collect::<Vec<u8>>())
            });
            let shown = [bearer.map(<[u8]>::to_vec), query];
            if shown
                .iter()
                .flatten()
                .any(|t| same_secret(t, token.as_bytes()))
            {
                return true;
            }
        }
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .map(|p| p.0.map(|a| a.ip()));
        self.cfg.kick_from_loopback
            && peer.is_some_and(|peer| self.cfg.trusted_proxies.is_local(peer, req.headers()))
    }

    /// `GET /v1/kick-active-users`: closes every online user's socket (4001).
    pub(crate) fn kick(&self, req: &Request) -> Response {
        if !self.may_kick(req) {
            codes::reject(reason::KICK_FORBIDDEN);
            return text_response(StatusCode::FORBIDDEN, "Forbidden");
        }
        // Every online user's socket, on every node, is subscribed to the kick topic.
        let p = self
            .relay
            .close_topic(super::KICK_TOPIC, codes::KICKED, None);
        let here = p.local.map(|f| f.delivered);
        tracing::info!(kicked_here = ?here, bus = ?p.bus, "rtc: kicked every active user");
        text_response(StatusCode::OK, "OK")
    }
}
