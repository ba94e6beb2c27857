//! Shared by the talk tests: a stand-in Nextcloud (Nextcloud itself cannot
//! run here) and a scripted Talk client.
//!
//! The stand-in checks every request as Talk's `SignalingController` does:
//! `Spreed-Signaling-Random` of at least 32 characters and
//! `Spreed-Signaling-Checksum` = hex HMAC-SHA256(secret, random ‖ body),
//! else an OCS envelope with `invalid_request` (HTTP 200). It answers `auth`
//! (ticket `ticket-<user>`; empty params = a guest), `room` (join: the room's
//! properties and permissions; `no-such-room` is refused with
//! `no_such_room`; `action: leave` acknowledged) and `ping`, in OCS
//! envelopes, on the v1 and v3 paths. It records each request it accepted.
//! It also serves its capabilities (`GET /ocs/v2.php/cloud/capabilities`,
//! with `OCS-APIRequest: true`, else 400) with `signaling-v3` and an Ed25519
//! `hello-v2-token-key` (raw base64, as Nextcloud publishes it) generated at
//! start, and signs hello v2 tokens with it ([`Nextcloud::token`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use switchboard_testkit::ws;

/// The shared secret of the stand-in.
pub(crate) const SECRET: &str = "the-shared-secret-of-the-test-nextcloud";

/// A running stand-in Nextcloud.
pub(crate) struct Nextcloud {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Value>,
    rejected: Arc<Mutex<u32>>,
    signing: ed25519_dalek::SigningKey,
}

fn hex_hmac(secret: &[u8], random: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(random);
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The signature headers Nextcloud puts on its requests to the signaling server.
pub(crate) fn sign(secret: &str, body: &[u8]) -> (String, String) {
    let random = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned();
    let checksum = hex_hmac(secret.as_bytes(), random.as_bytes(), body);
    (random, checksum)
}

/// An OCS envelope, sent as `application/json` as Nextcloud does (the original refuses other types).
fn ocs(data: Value) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"ocs": {"meta": {"status": "ok", "statuscode": 200, "message": "OK"}, "data": data}})
            .to_string(),
    )
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"code": code, "message": message}})
}

fn answer(body: &Value) -> Value {
    match body["type"].as_str() {
        Some("auth") => {
            let params = &body["auth"]["params"];
            match params["userid"].as_str() {
                None => json!({"type": "auth", "auth": {"version": "1.0"}}),
                Some(user) if params["ticket"] == format!("ticket-{user}") => json!({
                    "type": "auth",
                    "auth": {"version": "1.0", "userid": user, "user": {"displayname": user.to_uppercase()}}
                }),
                Some(_) => error(
                    "invalid_ticket",
                    "The given ticket is not valid for this user.",
                ),
            }
        }
        Some("room") => {
            let room = &body["room"];
            let roomid = room["roomid"].as_str().unwrap_or("");
            if room["action"] == "leave" {
                return json!({"type": "room", "room": {"version": "1.0", "roomid": roomid}});
            }
            if roomid == "no-such-room" {
                return error("no_such_room", "The user is not invited to this room.");
            }
            json!({"type": "room", "room": {
                "version": "1.0",
                "roomid": roomid,
                "properties": {"name": format!("Room {roomid}"), "type": 3},
                "permissions": ["publish-audio", "publish-video", "publish-screen"],
            }})
        }
        Some("ping") => json!({"type": "room", "room": {"version": "1.0"}}),
        _ => error("invalid_request", "Unsupported request."),
    }
}

impl Nextcloud {
    /// Starts the stand-in on 127.0.0.1:0.
    pub(crate) async fn start() -> Nextcloud {
        let (tx, requests) = mpsc::unbounded_channel();
        let rejected = Arc::new(Mutex::new(0));
        let rejected2 = rejected.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let rejected = rejected2.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let random = h("spreed-signaling-random");
                let checksum = h("spreed-signaling-checksum");
                let valid = random.len() >= 32
                    && checksum == hex_hmac(SECRET.as_bytes(), random.as_bytes(), &body)
                    && h("ocs-apirequest") == "true";
                if !valid {
                    *rejected.lock().unwrap() += 1;
                    return ocs(error(
                        "invalid_request",
                        "The request could not be authenticated.",
                    ));
                }
                let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                    return ocs(error("invalid_request", "Bad JSON."));
                };
                let reply = answer(&body);
                let _ = tx.send(body);
                ocs(reply)
            }
        };
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let public = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            signing.verifying_key().as_bytes(),
        );
        let capabilities = move |headers: HeaderMap| {
            let public = public.clone();
            async move {
                if headers.get("ocs-apirequest").and_then(|v| v.to_str().ok()) != Some("true") {
                    return axum::response::IntoResponse::into_response(
                        axum::http::StatusCode::BAD_REQUEST,
                    );
                }
                let caps = json!({"capabilities": {"spreed": {
                    "features": ["audio", "video", "signaling-v3"],
                    "config": {"signaling": {"hello-v2-token-key": public}},
                }}});
                axum::response::IntoResponse::into_response(ocs(caps))
            }
        };
        let app = Router::new()
            .route(
                "/ocs/v2.php/cloud/capabilities",
                axum::routing::get(capabilities),
            )
            .route(
                "/ocs/v2.php/apps/spreed/api/v1/signaling/backend",
                post(handler.clone()),
            )
            .route(
                "/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
                post(handler),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Nextcloud {
            addr,
            requests,
            rejected,
            signing,
        }
    }

    /// A hello v2 token (EdDSA) with these claims, signed with the published key.
    pub(crate) fn token(&self, claims: &Value) -> String {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signed = format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","typ":"JWT"}"#),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.signing.sign(signed.as_bytes()).to_bytes();
        format!("{signed}.{}", b64(&sig))
    }

    /// The base URL, as configured and as Talk clients name it.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The URL a Talk client puts in `hello.auth.url`.
    pub(crate) fn auth_url(&self) -> String {
        format!(
            "http://{}/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
            self.addr
        )
    }

    /// The next request it accepted (waits, bounded).
    pub(crate) async fn request(&mut self) -> Value {
        tokio::time::timeout(switchboard_testkit::WAIT, self.requests.recv())
            .await
            .expect("a request to the stand-in Nextcloud in time")
            .expect("the stand-in is running")
    }

    /// The next request of `kind` with `action` (`""`: a join), skipping others.
    pub(crate) async fn room_request(&mut self, action: &str) -> Value {
        loop {
            let r = self.request().await;
            if r["type"] == "room" && r["room"]["action"].as_str().unwrap_or("") == action {
                return r;
            }
        }
    }

    /// Requests refused for a bad checksum.
    pub(crate) fn rejected(&self) -> u32 {
        *self.rejected.lock().unwrap()
    }
}

/// A config with the talk service on (prefix `/talk`) and `nc` as its backend.
pub(crate) fn config(nc: &Nextcloud) -> switchboard::Config {
    config_with(nc, |_| {})
}

/// Like [`config`], with adjustments.
pub(crate) fn config_with(
    nc: &Nextcloud,
    adjust: impl FnOnce(&mut switchboard::Config),
) -> switchboard::Config {
    let url = nc.url();
    crate::harness::config(move |c| {
        c.talk.enabled = true;
        c.talk.backends = vec![switchboard::config::TalkBackendSection {
            id: "nc".into(),
            urls: vec![url],
            secret: SECRET.into(),
        }];
        adjust(c);
    })
}

/// A scripted Talk client.
pub(crate) struct TalkClient {
    pub(crate) ws: ws::Client,
    /// Its public session id once `hello` succeeded.
    pub(crate) session: String,
    /// Its resume id once `hello` succeeded.
    pub(crate) resume: String,
}

impl TalkClient {
    /// Connects and reads the welcome.
    pub(crate) async fn connect(addr: SocketAddr) -> TalkClient {
        let mut ws = ws::connect(addr, "/talk/spreed").await;
        let welcome: Value = serde_json::from_str(&ws.text().await).expect("json");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        TalkClient {
            ws,
            session: String::new(),
            resume: String::new(),
        }
    }

    /// Connects and says hello as `user` (ticket accepted by the stand-in).
    pub(crate) async fn user(addr: SocketAddr, nc: &Nextcloud, user: &str) -> TalkClient {
        let mut c = TalkClient::connect(addr).await;
        let reply = c.hello(nc, user).await;
        assert_eq!(reply["type"], "hello", "{reply}");
        c
    }

    /// Sends a JSON message.
    pub(crate) async fn send(&mut self, v: Value) {
        self.ws.send_text(&v.to_string()).await;
    }

    /// The next JSON message.
    pub(crate) async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.ws.text().await).expect("a JSON message")
    }

    /// Hello v1 as `user`, with its ticket; records the ids of a successful reply.
    pub(crate) async fn hello(&mut self, nc: &Nextcloud, user: &str) -> Value {
        self.send(json!({"id": "h", "type": "hello", "hello": {
            "version": "1.0",
            "auth": {"url": nc.auth_url(), "params": {"userid": user, "ticket": format!("ticket-{user}")}}
        }}))
        .await;
        let reply = self.recv().await;
        if reply["type"] == "hello" {
            self.session = reply["hello"]["sessionid"].as_str().unwrap().to_owned();
            self.resume = reply["hello"]["resumeid"].as_str().unwrap().to_owned();
        }
        reply
    }

    /// Joins `room` with Nextcloud session `nc_session`; returns the reply.
    pub(crate) async fn join(&mut self, room: &str, nc_session: &str) -> Value {
        self.send(
            json!({"id": "r", "type": "room", "room": {"roomid": room, "sessionid": nc_session}}),
        )
        .await;
        self.recv().await
    }
}
