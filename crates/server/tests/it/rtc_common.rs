//! Helpers shared by the rtc integration tests: register a name, connect with
//! its cookie, send a signaling message, and a raw client that never reads
//! or answers pings (for slow-peer and timeout tests).

use std::net::SocketAddr;

use switchboard::Config;
use switchboard_testkit::http::{self, Response};
use switchboard_testkit::raw::RawWs;
use switchboard_testkit::ws::{self, Client, Event};

use crate::harness;

/// The native mount prefix.
pub(crate) const PREFIX: &str = "/rtc";

/// The default test config (native mode, in-memory store), without the
/// registration rate limit, adjusted by `adjust`.
pub(crate) fn rtc_config(adjust: impl FnOnce(&mut Config)) -> Config {
    harness::config(|c| {
        c.rtc.register_per_minute = 0;
        adjust(c);
    })
}

/// `POST {prefix}/v1/register` with a JSON body.
pub(crate) async fn register_json(addr: SocketAddr, prefix: &str, name: &str) -> Response {
    let body = serde_json::json!({ "username": name }).to_string();
    http::request(
        addr,
        "POST",
        &format!("{prefix}/v1/register"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// Registers `name` and returns its `Cookie` header value (`user_username=…`).
pub(crate) async fn register(addr: SocketAddr, prefix: &str, name: &str) -> String {
    let r = register_json(addr, prefix, name).await;
    assert_eq!(r.status, 200, "register {name}: {}", r.text());
    assert_eq!(r.text(), r#"{"status":"SUCCESS","message":""}"#);
    cookie_of(&r)
}

/// The `name=value` part of a response's `Set-Cookie`.
pub(crate) fn cookie_of(r: &Response) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().expect("a cookie pair").to_owned()
}

/// Opens `{prefix}/v1/connect` with `cookie`.
pub(crate) async fn connect(addr: SocketAddr, prefix: &str, cookie: &str) -> Client {
    ws::try_connect(addr, &format!("{prefix}/v1/connect"), &[("Cookie", cookie)])
        .await
        .unwrap_or_else(|e| panic!("connect with {cookie}: {e}"))
}

/// Registers `name` and brings it online.
pub(crate) async fn online(addr: SocketAddr, name: &str) -> Client {
    let cookie = register(addr, PREFIX, name).await;
    connect(addr, PREFIX, &cookie).await
}

/// Sends `{"target","type","payload"}` with `payload` as raw JSON text.
pub(crate) async fn send(c: &mut Client, target: &str, kind: &str, payload: &str) {
    c.send_text(&format!(
        r#"{{"target":"{target}","type":"{kind}","payload":{payload}}}"#
    ))
    .await;
}

/// The frame `target` receives for that message from `from`.
pub(crate) fn forwarded(from: &str, target: &str, kind: &str, payload: &str) -> String {
    format!(
        "{{\"originator\":\"{from}\",\"target\":\"{target}\",\"type\":\"{kind}\",\"payload\":{payload}}}\n"
    )
}

/// What a sender hears when its target is not online.
pub(crate) const NOT_FOUND: &str =
    "{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n";

/// Expects a close frame and returns its code and reason.
pub(crate) async fn closed(c: &mut Client) -> (Option<u16>, String) {
    match c.next().await {
        Event::Close(code, reason) => (code, reason),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Opens the rtc socket at `path` over a bare TCP stream with `cookie`: a peer
/// that reads only when told (never reads, never answers pings). A small fixed
/// receive window makes a client that stops reading push back quickly.
pub(crate) async fn raw_connect(addr: SocketAddr, path: &str, cookie: &str) -> RawWs {
    RawWs::connect_with(addr, path, &[("Cookie", cookie)], Some(64 * 1024)).await
}
