//! The rtc service (webrtc-signal-server drop-in) end to end, in process: one
//! test per behaviour in `shared/specs/signal-server.md`. The deliberate
//! differences each have their own test in `rtc_differences.rs`.

use crate::harness::start;
use crate::rtc_common::*;
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Event};

#[tokio::test]
async fn healthcheck_answers_success_to_get_and_head() {
    let h = start(rtc_config(|_| {})).await;
    let r = http::get(h.addr, "/rtc/healthcheck").await;
    assert_eq!((r.status, r.text().as_str()), (200, "success"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = http::request(h.addr, "HEAD", "/rtc/healthcheck", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn register_with_json_succeeds_and_sets_a_javascript_readable_cookie() {
    let h = start(rtc_config(|_| {})).await;
    let r = register_json(h.addr, PREFIX, "alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"status":"SUCCESS","message":""}"#);
    let cookie = r.header("set-cookie").expect("Set-Cookie");
    assert_eq!(cookie, "user_username=alice; Path=/; SameSite=Lax");
    assert!(!cookie.to_ascii_lowercase().contains("httponly"));
    h.shutdown().await;
}

#[tokio::test]
async fn register_reads_form_and_multipart_bodies_and_any_key_case() {
    let h = start(rtc_config(|_| {})).await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "application/json; charset=utf-8",
            r#"{"USERNAME":"json-upper"}"#,
            "json-upper",
        ),
        (
            "application/x-www-form-urlencoded",
            "username=form-user",
            "form-user",
        ),
        (
            "application/x-www-form-urlencoded",
            "Username=form%2Dcap",
            "form-cap",
        ),
        (
            "multipart/form-data; boundary=b0und",
            "--b0und\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmulti\r\n--b0und--\r\n",
            "multi",
        ),
    ];
    for (ct, body, name) in cases {
        let r = http::request(
            h.addr,
            "POST",
            "/rtc/v1/register",
            &[("Content-Type", ct)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
        assert_eq!(r.text(), r#"{"status":"SUCCESS","message":""}"#, "{ct}");
        assert_eq!(cookie_of(&r), format!("user_username={name}"), "{ct}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_taken_name_is_200_taken_without_a_cookie() {
    let h = start(rtc_config(|_| {})).await;
    register(h.addr, PREFIX, "bob").await;
    let r = register_json(h.addr, PREFIX, "bob").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"status":"TAKEN","message":""}"#)
    );
    assert_eq!(r.header("set-cookie"), None);
    h.shutdown().await;
}

#[tokio::test]
async fn empty_names_and_unreadable_bodies_are_400_invalid() {
    let h = start(rtc_config(|_| {})).await;
    let empty = r#"{"status":"INVALID","message":"username cannot be empty"}"#;
    let body = r#"{"status":"INVALID","message":"invalid body"}"#;
    let cases: &[(&str, &str, &str)] = &[
        ("application/json", r#"{"username":""}"#, empty),
        ("application/json", "{}", empty),
        ("application/x-www-form-urlencoded", "other=1", empty),
        ("application/json", "{not json", body),
        ("application/json", r#"{"username":7}"#, body),
        ("text/plain", "alice", body),
    ];
    for (ct, b, want) in cases {
        let r = http::request(
            h.addr,
            "POST",
            "/rtc/v1/register",
            &[("Content-Type", ct)],
            b.as_bytes(),
        )
        .await;
        assert_eq!((r.status, r.text().as_str()), (400, *want), "{ct} {b}");
        assert_eq!(r.header("set-cookie"), None);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn user_is_200_for_a_registered_cookie_and_401_clearing_cookies_otherwise() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "carol").await;
    let r = http::request(h.addr, "GET", "/rtc/v1/user", &[("Cookie", &cookie)], b"").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    for headers in [
        vec![],
        vec![("Cookie", "user_username=nobody")],
        vec![("Cookie", "user_username=a b")],
    ] {
        let r = http::request(h.addr, "GET", "/rtc/v1/user", &headers, b"").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (401, "Unauthorized"),
            "{headers:?}"
        );
        assert_eq!(r.header("clear-site-data"), Some("\"cookies\""));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn connect_without_an_upgrade_is_426() {
    let h = start(rtc_config(|_| {})).await;
    let r = http::get(h.addr, "/rtc/v1/connect").await;
    assert_eq!((r.status, r.text().as_str()), (426, "Upgrade Required"));
    // A broken handshake is 426 too, as the original answers any failed upgrade.
    let r = http::request(
        h.addr,
        "GET",
        "/rtc/v1/connect",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "8"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 426);
    h.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_unknown_cookie_is_closed_4000_unauthenticated_after_the_101() {
    let h = start(rtc_config(|_| {})).await;
    let mut none = ws::try_connect(h.addr, "/rtc/v1/connect", &[])
        .await
        .expect("a 101");
    assert_eq!(
        closed(&mut none).await,
        (Some(4000), "UNAUTHENTICATED".into())
    );
    let mut unknown = connect(h.addr, PREFIX, "user_username=ghost").await;
    assert_eq!(
        closed(&mut unknown).await,
        (Some(4000), "UNAUTHENTICATED".into())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_is_closed_already_exists_and_the_first_keeps_working() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "dave").await;
    let mut first = connect(h.addr, PREFIX, &cookie).await;
    let mut second = connect(h.addr, PREFIX, &cookie).await;
    assert_eq!(
        closed(&mut second).await,
        (Some(4000), "ALREADY_EXISTS".into())
    );
    let mut erin = online(h.addr, "erin").await;
    send(&mut erin, "dave", "ping", "1").await;
    assert_eq!(first.text().await, forwarded("erin", "dave", "ping", "1"));
    h.shutdown().await;
}

#[tokio::test]
async fn offer_answer_and_candidates_are_relayed_with_the_originator() {
    let h = start(rtc_config(|_| {})).await;
    let mut host = online(h.addr, "host").await;
    let mut joiner = online(h.addr, "joiner").await;
    let offer = r#"{"type":"offer","sdp":"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\n"}"#;
    send(&mut joiner, "host", "video-offer", offer).await;
    assert_eq!(
        host.text().await,
        forwarded("joiner", "host", "video-offer", offer)
    );
    let answer = r#"{"type":"answer","sdp":"v=0\r\n"}"#;
    send(&mut host, "joiner", "video-answer", answer).await;
    assert_eq!(
        joiner.text().await,
        forwarded("host", "joiner", "video-answer", answer)
    );
    let candidate = r#"{"candidate":"candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
    send(&mut joiner, "host", "ice-candidate", candidate).await;
    assert_eq!(
        host.text().await,
        forwarded("joiner", "host", "ice-candidate", candidate)
    );
    send(&mut host, "joiner", "ice-candidate", "null").await;
    assert_eq!(
        joiner.text().await,
        forwarded("host", "joiner", "ice-candidate", "null")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn input_keys_match_any_case_a_missing_payload_is_null_and_binary_frames_work() {
    let h = start(rtc_config(|_| {})).await;
    let mut a = online(h.addr, "a").await;
    let mut b = online(h.addr, "b").await;
    a.send_text(r#"{"TARGET":"b","Type":"t","extra":[1]}"#)
        .await;
    assert_eq!(b.text().await, forwarded("a", "b", "t", "null"));
    a.send_binary(br#"{"target":"b","type":"bin","payload":{"x":1}}"#)
        .await;
    assert_eq!(b.text().await, forwarded("a", "b", "bin", r#"{"x":1}"#));
    // Only the first JSON value of a frame is read.
    a.send_text(r#"{"target":"b","type":"one"}{"target":"b","type":"two"}"#)
        .await;
    assert_eq!(b.text().await, forwarded("a", "b", "one", "null"));
    b.expect_silence(100).await;
    h.shutdown().await;
}

#[tokio::test]
async fn an_unknown_offline_or_empty_target_answers_target_not_found() {
    let h = start(rtc_config(|_| {})).await;
    register(h.addr, PREFIX, "offline").await;
    let mut a = online(h.addr, "sender").await;
    for target in ["nobody", "offline", ""] {
        send(&mut a, target, "video-offer", "{}").await;
        assert_eq!(a.text().await, NOT_FOUND, "{target:?}");
    }
    a.send_text(r#"{"type":"no target"}"#).await;
    assert_eq!(a.text().await, NOT_FOUND);
    h.shutdown().await;
}

#[tokio::test]
async fn a_user_may_message_itself() {
    let h = start(rtc_config(|_| {})).await;
    let mut me = online(h.addr, "narcissus").await;
    send(&mut me, "narcissus", "note", r#""hi""#).await;
    assert_eq!(
        me.text().await,
        forwarded("narcissus", "narcissus", "note", r#""hi""#)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn routing_follows_fiber_at_the_root_in_persona_mode() {
    let h = start(rtc_config(|c| {
        c.rtc.prefix = String::new();
        c.rtc.call_page = false;
        c.pubsub.enabled = false;
        c.console.enabled = false;
    }))
    .await;
    let json = [("Content-Type", "application/json")];
    let r = http::request(
        h.addr,
        "POST",
        "/V1/REGISTER/",
        &json,
        br#"{"username":"upper"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"status":"SUCCESS","message":""}"#)
    );
    assert_eq!(http::get(h.addr, "/HealthCheck/").await.text(), "success");
    let r = http::request(h.addr, "HEAD", "/v1/user", &[], b"").await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    let r = http::get(h.addr, "/x").await;
    assert_eq!((r.status, r.text().as_str()), (404, "Cannot GET /x"));
    let r = http::request(h.addr, "POST", "/a&b", &json, b"{}").await;
    assert_eq!((r.status, r.text().as_str()), (404, "Cannot POST /a&amp;b"));
    let r = http::get(h.addr, "/call").await;
    assert_eq!(r.status, 404, "no demo page in persona mode");
    for (method, path) in [
        ("GET", "/v1/register"),
        ("POST", "/v1/user"),
        ("DELETE", "/healthcheck"),
    ] {
        let r = http::request(h.addr, method, path, &[], b"").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (405, "Method Not Allowed"),
            "{method} {path}"
        );
    }
    // The WebSocket works at the root, with the case-insensitive path.
    let cookie = cookie_of(&register_json(h.addr, "", "root-user").await);
    let mut c = ws::try_connect(h.addr, "/V1/Connect", &[("Cookie", &cookie)])
        .await
        .expect("101");
    c.send_text(r#"{"target":"root-user","type":"t"}"#).await;
    assert_eq!(
        c.text().await,
        forwarded("root-user", "root-user", "t", "null")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn kick_answers_ok_and_closes_every_active_socket() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "kicked").await;
    let mut a = connect(h.addr, PREFIX, &cookie).await;
    let mut b = online(h.addr, "also-kicked").await;
    let r = http::get(h.addr, "/rtc/v1/kick-active-users").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(closed(&mut a).await, (Some(4001), "KICKED".into()));
    assert_eq!(closed(&mut b).await, (Some(4001), "KICKED".into()));
    // A kicked user can come back at once.
    let mut again = connect(h.addr, PREFIX, &cookie).await;
    send(&mut again, "kicked", "t", "1").await;
    assert_eq!(again.text().await, forwarded("kicked", "kicked", "t", "1"));
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let h = start(rtc_config(|_| {})).await;
    let mut a = online(h.addr, "leaving").await;
    h.app.shutdown.cancel();
    assert_eq!(
        a.next().await,
        Event::Close(Some(1001), "server shutting down".into())
    );
    h.shutdown().await;
}
