//! The client protocol's JSON: the envelope clients send (parsed and
//! checked as the original's `CheckValid` does) and the frames the server
//! sends (`{"id"?,"type":"t","t":{…}}`). Payloads the server only forwards
//! (`data`, `properties`, `user`, `params`) stay raw JSON, byte for byte.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::errors::ClientError;

/// Raw JSON kept as sent.
pub type Raw = Box<RawValue>;

/// The part of `hello` after `auth.url` was cut to the backend's base.
#[derive(Debug, Clone, Deserialize)]
pub struct HelloAuth {
    /// `client` (default), `internal` or `federation`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The Nextcloud URL the client names.
    #[serde(default)]
    pub url: String,
    /// Passed to Nextcloud unchanged.
    #[serde(default)]
    pub params: Option<Raw>,
}

/// `hello`.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    /// `1.0` (or `2.0`, refused until hello v2 is built).
    #[serde(default)]
    pub version: String,
    /// Set to resume a session.
    #[serde(default)]
    pub resumeid: String,
    /// Client features (`chat-relay`, …).
    #[serde(default)]
    pub features: Vec<String>,
    /// How to authenticate.
    #[serde(default)]
    pub auth: Option<HelloAuth>,
}

/// `room`.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomRequest {
    /// The room to join; empty: leave the current one.
    #[serde(default)]
    pub roomid: String,
    /// The Nextcloud session id of this participant.
    #[serde(default)]
    pub sessionid: String,
}

/// Who a `message` or `control` goes to.
#[derive(Debug, Clone, Deserialize)]
pub struct Recipient {
    /// `session`, `user`, `room` or `call`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// For `session`.
    #[serde(default)]
    pub sessionid: String,
    /// For `user`.
    #[serde(default)]
    pub userid: String,
}

/// `message` / `control`.
#[derive(Debug, Clone, Deserialize)]
pub struct Relay {
    /// Who it is for.
    pub recipient: Option<Recipient>,
    /// Forwarded unchanged.
    pub data: Option<Raw>,
}

/// One message from a client, checked.
#[derive(Debug, Clone)]
pub struct ClientMessage {
    /// Echoed in the reply.
    pub id: Option<String>,
    /// What it asks.
    pub body: Body,
}

/// The kinds of client message this server acts on.
#[derive(Debug, Clone)]
pub enum Body {
    /// `hello`.
    Hello(Hello),
    /// `bye`.
    Bye,
    /// `room`.
    Room(RoomRequest),
    /// `message`.
    Message(Relay),
    /// `control`.
    Control(Relay),
    /// A known type that this server does not handle yet, or an unknown one: ignored.
    Other(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    hello: Option<Hello>,
    #[serde(default)]
    room: Option<RoomRequest>,
    #[serde(default)]
    message: Option<Relay>,
    #[serde(default)]
    control: Option<Relay>,
}

/// Why a message was refused, with the id to echo when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The request's id, if the envelope was readable.
    pub id: Option<String>,
    /// The error to answer.
    pub error: ClientError,
}

/// Parses and checks one text message.
pub fn parse(text: &[u8]) -> Result<ClientMessage, Refusal> {
    let env: Envelope = serde_json::from_slice(text).map_err(|_| Refusal {
        id: None,
        error: ClientError::InvalidFormat,
    })?;
    let id = match env.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(Refusal {
                id: None,
                error: ClientError::InvalidFormat,
            });
        }
    };
    let refuse = |error| Refusal {
        id: id.clone(),
        error,
    };
    let body = match env.kind.as_str() {
        "" => return Err(refuse(ClientError::InvalidFormat)),
        "hello" => {
            let Some(mut h) = env.hello else {
                return Err(refuse(ClientError::InvalidFormat));
            };
            check_hello(&mut h).map_err(refuse)?;
            Body::Hello(h)
        }
        "bye" => Body::Bye,
        "room" => Body::Room(env.room.ok_or_else(|| refuse(ClientError::InvalidFormat))?),
        "message" | "control" => {
            let relay = if env.kind == "message" {
                env.message
            } else {
                env.control
            };
            let Some(r) = relay else {
                return Err(refuse(ClientError::InvalidFormat));
            };
            check_relay(&r).map_err(refuse)?;
            if env.kind == "message" {
                Body::Message(r)
            } else {
                Body::Control(r)
            }
        }
        other => Body::Other(other.to_owned()),
    };
    Ok(ClientMessage { id, body })
}

fn check_hello(h: &mut Hello) -> Result<(), ClientError> {
    if h.version != "1.0" && h.version != "2.0" {
        return Err(ClientError::InvalidHelloVersion);
    }
    if !h.resumeid.is_empty() {
        return Ok(());
    }
    let Some(auth) = h.auth.as_mut() else {
        return Err(ClientError::InvalidFormat);
    };
    let empty_params = auth
        .params
        .as_ref()
        .is_none_or(|p| p.get() == "null" || p.get().is_empty());
    if empty_params {
        return Err(ClientError::InvalidFormat);
    }
    if auth.kind.is_empty() {
        auth.kind = "client".into();
    }
    match auth.kind.as_str() {
        "client" | "federation" => {
            if auth.url.is_empty() {
                return Err(ClientError::InvalidFormat);
            }
            auth.url = base_url(&auth.url).ok_or(ClientError::InvalidFormat)?;
        }
        "internal" => {}
        _ => return Err(ClientError::InvalidClientType),
    }
    Ok(())
}

fn check_relay(r: &Relay) -> Result<(), ClientError> {
    let Some(rec) = &r.recipient else {
        return Err(ClientError::InvalidFormat);
    };
    if r.data.as_ref().is_none_or(|d| d.get().is_empty()) {
        return Err(ClientError::InvalidFormat);
    }
    match rec.kind.as_str() {
        "room" | "call" => Ok(()),
        "session" if !rec.sessionid.is_empty() => Ok(()),
        "user" if !rec.userid.is_empty() => Ok(()),
        _ => Err(ClientError::InvalidFormat),
    }
}

/// The backend base URL of a client's `auth.url`: a `/` appended, everything
/// from `ocs/v2.php/apps/spreed/` on cut, the scheme and host lower-cased and
/// a default port removed. `None` when it is not an absolute http(s) URL.
pub fn base_url(url: &str) -> Option<String> {
    let mut u = url.to_owned();
    if !u.ends_with('/') {
        u.push('/');
    }
    if let Some(pos) = u.find("ocs/v2.php/apps/spreed/") {
        u.truncate(pos);
    }
    let uri: http::Uri = u.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = uri.host()?.to_ascii_lowercase();
    let port = match (scheme.as_str(), uri.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{scheme}://{host}{port}{path_and_query}"))
}

/// A server message `{"id"?,"type":kind,kind:body}`; `body` `None` leaves the key out.
pub fn frame<T: Serialize + ?Sized>(id: Option<&str>, kind: &str, body: Option<&T>) -> Bytes {
    let mut out = String::with_capacity(64);
    out.push('{');
    if let Some(id) = id {
        out.push_str("\"id\":");
        out.push_str(&serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into()));
        out.push(',');
    }
    out.push_str("\"type\":");
    out.push_str(&serde_json::to_string(kind).unwrap_or_default());
    if let Some(b) = body {
        out.push_str(",\"");
        out.push_str(kind);
        out.push_str("\":");
        out.push_str(&serde_json::to_string(b).unwrap_or_else(|_| "null".into()));
    }
    out.push('}');
    Bytes::from(out)
}

/// An error reply.
pub fn error(id: Option<&str>, e: &ClientError, details: Option<&RawValue>) -> Bytes {
    frame(id, "error", Some(&e.body(details)))
}

/// `bye`, with a reason (`{"type":"bye","bye":{"reason":…}}`) or without a body.
pub fn bye(id: Option<&str>, reason: Option<&str>) -> Bytes {
    match reason {
        Some(r) => frame(id, "bye", Some(&serde_json::json!({ "reason": r }))),
        None => frame::<()>(id, "bye", None),
    }
}

/// The `welcome` body (and `hello.server`).
#[derive(Debug, Clone, Serialize)]
pub struct Welcome<'a> {
    /// The protocol version we speak.
    pub version: &'a str,
    /// What we offer.
    pub features: &'a [&'a str],
}

/// `hello` reply.
#[derive(Debug, Serialize)]
pub struct HelloReply<'a> {
    /// Always `1.0` for now.
    pub version: &'a str,
    /// The public session id.
    pub sessionid: &'a str,
    /// The private (resume) id.
    pub resumeid: &'a str,
    /// The user (empty for guests), always present.
    pub userid: &'a str,
    /// The server's features (the Talk client rebuilds its feature map from these).
    pub server: Welcome<'a>,
}

/// `room` reply or room update.
#[derive(Debug, Serialize)]
pub struct RoomReply<'a> {
    /// The room (empty after a leave or deletion).
    pub roomid: &'a str,
    /// The room's properties from Nextcloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<&'a RawValue>,
}

/// One entry of a `join` event.
#[derive(Debug, Serialize)]
pub struct JoinEntry<'a> {
    /// Public session id.
    pub sessionid: &'a str,
    /// User id, always present.
    pub userid: &'a str,
    /// Client features.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub features: &'a [String],
    /// User data from Nextcloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a RawValue>,
    /// The Nextcloud session id.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub roomsessionid: &'a str,
}

/// `{"type":"event","event":{"target":target,"type":kind,kind:body}}`.
pub fn event<T: Serialize + ?Sized>(target: &str, kind: &str, body: &T) -> Bytes {
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let body = serde_json::to_string(body).unwrap_or_else(|_| "null".into());
    let ev = format!(
        "{{\"target\":{},\"type\":{},{}:{body}}}",
        js(target),
        js(kind),
        js(kind)
    );
    let raw = RawValue::from_string(ev).ok();
    frame(None, "event", raw.as_deref())
}

/// Who sent a relayed message.
#[derive(Debug, Serialize)]
pub struct Sender<'a> {
    /// The recipient type the sender used.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The sender's public session id.
    pub sessionid: &'a str,
    /// The sender's user id (left out for guests).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub userid: &'a str,
}

/// A relayed `message`/`control` body.
#[derive(Debug, Serialize)]
pub struct Delivery<'a> {
    /// Who sent it.
    pub sender: Sender<'a>,
    /// What was sent, unchanged.
    pub data: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> (Option<String>, String) {
        let r = parse(text.as_bytes()).expect_err(text);
        (r.id, r.error.code().to_owned())
    }

    #[test]
    fn malformed_and_invalid_messages_get_the_specs_codes() {
        let table: &[(&str, Option<&str>, &str)] = &[
            ("not json", None, "invalid_format"),
            ("[]", None, "invalid_format"),
            (r#"{"id":"1"}"#, Some("1"), "invalid_format"),
            (r#"{"id":"2","type":"hello"}"#, Some("2"), "invalid_format"),
            (
                r#"{"id":"3","type":"hello","hello":{"version":"3.0"}}"#,
                Some("3"),
                "invalid_hello_version",
            ),
            (
                r#"{"id":"4","type":"hello","hello":{"version":"1.0"}}"#,
                Some("4"),
                "invalid_format",
            ),
            (
                r#"{"id":"5","type":"hello","hello":{"version":"1.0","auth":{"url":"https://x/","params":{}}}}"#,
                None,
                "",
            ),
            (
                r#"{"id":"6","type":"hello","hello":{"version":"1.0","auth":{"params":{"a":1}}}}"#,
                Some("6"),
                "invalid_format",
            ),
            (
                r#"{"id":"7","type":"hello","hello":{"version":"1.0","auth":{"type":"robot","url":"https://x/","params":{"a":1}}}}"#,
                Some("7"),
                "invalid_client_type",
            ),
            (
                r#"{"id":"8","type":"message","message":{"recipient":{"type":"session"},"data":{}}}"#,
                Some("8"),
                "invalid_format",
            ),
            (
                r#"{"id":"9","type":"message","message":{"recipient":{"type":"room"}}}"#,
                Some("9"),
                "invalid_format",
            ),
            (
                r#"{"id":"10","type":"message","message":{"recipient":{"type":"planet"},"data":1}}"#,
                Some("10"),
                "invalid_format",
            ),
            (r#"{"id":"11","type":"room"}"#, Some("11"), "invalid_format"),
        ];
        for (text, id, want) in table {
            if want.is_empty() {
                // `{}` params are present (the benchmark client sends them).
                assert!(parse(text.as_bytes()).is_ok(), "{text}");
                continue;
            }
            assert_eq!(
                code(text),
                (id.map(str::to_owned), (*want).to_owned()),
                "{text}"
            );
        }
    }

    #[test]
    fn hello_urls_are_cut_to_the_backend_base() {
        let table = [
            (
                "https://cloud.example.com/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
                Some("https://cloud.example.com/"),
            ),
            (
                "https://Cloud.Example.com:443/nc/ocs/v2.php/apps/spreed/api/v1/signaling/backend",
                Some("https://cloud.example.com/nc/"),
            ),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080/")),
            ("http://h:80/x", Some("http://h/x/")),
            ("ftp://h/", None),
            ("/relative", None),
        ];
        for (given, want) in table {
            assert_eq!(base_url(given).as_deref(), want, "{given}");
        }
    }

    #[test]
    fn frames_have_the_originals_shape() {
        assert_eq!(&bye(Some("9"), None)[..], br#"{"id":"9","type":"bye"}"#);
        assert_eq!(
            &bye(None, Some("hello_timeout"))[..],
            br#"{"type":"bye","bye":{"reason":"hello_timeout"}}"#
        );
        assert_eq!(
            &error(Some("1"), &ClientError::HelloExpected, None)[..],
            br#"{"id":"1","type":"error","error":{"code":"hello_expected","message":"Expected Hello request."}}"#
        );
        let leave = event("room", "leave", &["abc"]);
        assert_eq!(
            &leave[..],
            br#"{"type":"event","event":{"target":"room","type":"leave","leave":["abc"]}}"#
        );
        let unknown = parse(br#"{"type":"transient","transient":{}}"#).expect("parses");
        assert!(matches!(unknown.body, Body::Other(ref t) if t == "transient"));
    }
}
