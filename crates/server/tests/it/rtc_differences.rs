//! The rtc service's deliberate differences from webrtc-signal-server, one
//! test each (the list is `docs/compatibility.md`, section rtc), and the bad
//! input cases: each gets a clear status or close code, is counted, and
//! leaves everyone else unharmed.

use crate::harness::start;
use crate::rtc_common::*;
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Event};

#[tokio::test]
async fn difference_a_tcp_drop_frees_the_name_so_a_reconnect_works() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "dropper").await;
    let raw = raw_connect(h.addr, "/rtc/v1/connect", &cookie).await;
    assert_eq!(h.app.rtc.as_ref().map(|r| r.online()), Some(1));
    drop(raw); // FIN, no close frame
    h.eventually("the dropped user is offline", |app| {
        app.rtc.as_ref().is_some_and(|r| r.online() == 0)
    })
    .await;
    let mut again = connect(h.addr, PREFIX, &cookie).await;
    send(&mut again, "dropper", "t", "1").await;
    assert_eq!(
        again.text().await,
        forwarded("dropper", "dropper", "t", "1")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_message_to_a_dropped_user_is_not_found_and_reaches_no_one_else() {
    let h = start(rtc_config(|_| {})).await;
    let bob_cookie = register(h.addr, PREFIX, "bob").await;
    let mut alice = online(h.addr, "alice").await;
    let bob = raw_connect(h.addr, "/rtc/v1/connect", &bob_cookie).await;
    drop(bob);
    // Whoever connects next must never see bob's messages.
    let mut carol = online(h.addr, "carol").await;
    h.eventually("bob is offline", |app| {
        !app.presence.held_here("rtc", "bob")
    })
    .await;
    send(&mut alice, "bob", "video-offer", "{}").await;
    assert_eq!(alice.text().await, NOT_FOUND);
    carol.expect_silence(100).await;
    assert_eq!(
        http::get(h.addr, "/rtc/healthcheck").await.status,
        200,
        "the server is alive"
    );
    // bob back: only the new socket gets bob's messages.
    let mut bob = connect(h.addr, PREFIX, &bob_cookie).await;
    send(&mut alice, "bob", "video-offer", "2").await;
    assert_eq!(
        bob.text().await,
        forwarded("alice", "bob", "video-offer", "2")
    );
    carol.expect_silence(50).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_bad_json_closes_1007_and_frees_the_name_at_once() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "sloppy").await;
    let mut other = online(h.addr, "bystander").await;
    for bad in ["not json", "[1,2]", r#"{"target":5}"#, ""] {
        let mut c = connect(h.addr, PREFIX, &cookie).await;
        c.send_text(bad).await;
        let (code, reason) = closed(&mut c).await;
        assert_eq!(code, Some(1007), "{bad:?}");
        assert!(
            reason.starts_with("invalid JSON message: "),
            "{bad:?}: {reason}"
        );
        // The close frame went out after the name was freed: no waiting.
    }
    let mut c = connect(h.addr, PREFIX, &cookie).await;
    send(&mut c, "bystander", "t", "1").await;
    assert_eq!(
        other.text().await,
        forwarded("sloppy", "bystander", "t", "1")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_silent_peer_times_out_with_1008_and_is_freed() {
    let h = start(rtc_config(|c| {
        c.rtc.ping_interval_secs = 1;
        c.rtc.idle_timeout_secs = 2;
    }))
    .await;
    let cookie = register(h.addr, PREFIX, "sleepy").await;
    let mut raw = raw_connect(h.addr, "/rtc/v1/connect", &cookie).await;
    // Never answers the pings; the server gives up and says why.
    let close = raw.until_close().await.expect("a close frame");
    assert_eq!(close.close_code(), Some(1008));
    assert_eq!(&close.payload[2..], b"keepalive timeout");
    raw.send_frame(8, &1000u16.to_be_bytes()).await;
    h.eventually("sleepy is offline", |app| {
        !app.presence.held_here("rtc", "sleepy")
    })
    .await;
    let mut again = connect(h.addr, PREFIX, &cookie).await;
    send(&mut again, "sleepy", "t", "1").await;
    assert_eq!(again.text().await, forwarded("sleepy", "sleepy", "t", "1"));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_client_close_is_answered_and_frees_the_name() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "polite").await;
    let mut c = connect(h.addr, PREFIX, &cookie).await;
    c.close(1000, "bye").await;
    assert_eq!(closed(&mut c).await.0, Some(1000), "the close is answered");
    h.eventually("polite is offline", |app| {
        !app.presence.held_here("rtc", "polite")
    })
    .await;
    let mut again = connect(h.addr, PREFIX, &cookie).await;
    send(&mut again, "polite", "t", "1").await;
    assert_eq!(again.text().await, forwarded("polite", "polite", "t", "1"));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_the_server_pings() {
    let h = start(rtc_config(|c| {
        c.rtc.ping_interval_secs = 1;
        c.rtc.idle_timeout_secs = 10;
    }))
    .await;
    let mut c = online(h.addr, "pinged").await;
    assert_eq!(c.next_raw().await, Event::Ping);
    h.shutdown().await;
}

#[tokio::test]
async fn difference_messages_over_64_kib_close_1009_and_others_are_unharmed() {
    let h = start(rtc_config(|_| {})).await;
    let mut big = online(h.addr, "big").await;
    let mut a = online(h.addr, "a").await;
    let mut b = online(h.addr, "b").await;
    // A message of exactly 64 KiB still goes through.
    let fits = format!(
        r#""{}""#,
        "x".repeat(65536 - r#"{"target":"b","type":"t","payload":""}"#.len())
    );
    send(&mut big, "b", "t", &fits).await;
    assert_eq!(b.text().await, forwarded("big", "b", "t", &fits));
    let too_big = format!(r#""{}""#, "x".repeat(65536));
    send(&mut big, "b", "t", &too_big).await;
    assert_eq!(closed(&mut big).await.0, Some(1009));
    send(&mut a, "b", "t", "2").await;
    assert_eq!(b.text().await, forwarded("a", "b", "t", "2"));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_slow_peer_never_stalls_its_sender() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_websockets::{ClientBuilder, Message};

    let h = start(rtc_config(|c| {
        c.rtc.outbox_messages = 4;
        c.rtc.outbox_bytes = 1 << 20;
    }))
    .await;
    let slow_cookie = register(h.addr, PREFIX, "slow").await;
    let _slow = raw_connect(h.addr, "/rtc/v1/connect", &slow_cookie).await; // never reads
    let mut carol = online(h.addr, "carol").await;
    // alice reads and writes at once, as a browser does.
    let alice_cookie = register(h.addr, PREFIX, "alice").await;
    let (alice, _) = ClientBuilder::new()
        .uri(&format!("ws://{}/rtc/v1/connect", h.addr))
        .expect("uri")
        .add_header(
            ::http::header::COOKIE,
            ::http::HeaderValue::from_str(&alice_cookie).expect("cookie"),
        )
        .expect("header")
        .connect()
        .await
        .expect("alice connects");
    let (mut alice_tx, mut alice_rx) = alice.split();
    let heard_not_found = tokio::spawn(async move {
        while let Some(Ok(m)) = alice_rx.next().await {
            if m.as_text() == Some(NOT_FOUND) {
                return true;
            }
        }
        false
    });
    let chunk = "s".repeat(60_000);
    let msg = format!(r#"{{"target":"slow","type":"video-offer","payload":"{chunk}"}}"#);
    // Far more than the socket buffers hold: the slow peer's writer blocks,
    // its outbox overflows, and it is closed as a slow consumer (1013),
    // while alice's sends all go through.
    let flood = async {
        for _ in 0..400 {
            alice_tx
                .send(Message::text(msg.clone()))
                .await
                .expect("alice sends");
        }
        let after = r#"{"target":"carol","type":"t","payload":"after"}"#;
        alice_tx
            .send(Message::text(after.to_owned()))
            .await
            .expect("alice sends");
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), flood)
        .await
        .expect("alice is never blocked by the slow peer");
    assert_eq!(
        carol.text().await,
        forwarded("alice", "carol", "t", r#""after""#)
    );
    let heard = tokio::time::timeout(switchboard_testkit::WAIT, heard_not_found)
        .await
        .expect("alice hears TARGET_NOT_FOUND in time")
        .expect("reader task");
    assert!(heard, "alice hears that the slow peer is gone");
    assert!(!h.app.presence.held_here("rtc", "slow"));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_names_that_are_not_cookie_values_are_invalid() {
    let h = start(rtc_config(|_| {})).await;
    for name in [
        "sp;ace=x, Domain=evil",
        "a b",
        "quote\"d",
        "back\\slash",
        "zoë",
        "tab\t",
    ] {
        let r = register_json(h.addr, PREFIX, name).await;
        assert_eq!(r.status, 400, "{name:?}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(v["status"], "INVALID", "{name:?}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("printable ASCII")),
            "{name:?}: {v}"
        );
        assert_eq!(r.header("set-cookie"), None, "{name:?}");
    }
    let long = "x".repeat(257);
    assert_eq!(register_json(h.addr, PREFIX, &long).await.status, 400);
    h.shutdown().await;
}

const ADMIN_TOKEN: &str = "admin-token-0123456789";

#[tokio::test]
async fn difference_kick_needs_loopback_or_the_admin_token() {
    let h = start(rtc_config(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
        c.rtc.admin_token = ADMIN_TOKEN.into();
    }))
    .await;
    let mut a = online(h.addr, "target").await;
    let remote = [("X-Forwarded-For", "192.0.2.7")];
    let r = http::request(h.addr, "GET", "/rtc/v1/kick-active-users", &remote, b"").await;
    assert_eq!((r.status, r.text().as_str()), (403, "Forbidden"));
    send(&mut a, "target", "t", "1").await;
    assert_eq!(
        a.text().await,
        forwarded("target", "target", "t", "1"),
        "not kicked"
    );
    let wrong = [
        ("X-Forwarded-For", "192.0.2.7"),
        ("Authorization", "Bearer admin-token-WRONG-456789"),
    ];
    assert_eq!(
        http::request(h.addr, "GET", "/rtc/v1/kick-active-users", &wrong, b"")
            .await
            .status,
        403
    );
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let with_token = [
        ("X-Forwarded-For", "192.0.2.7"),
        ("Authorization", bearer.as_str()),
    ];
    let r = http::request(h.addr, "GET", "/rtc/v1/kick-active-users", &with_token, b"").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(closed(&mut a).await, (Some(4001), "KICKED".into()));
    let query = format!("/rtc/v1/kick-active-users?token={ADMIN_TOKEN}");
    assert_eq!(
        http::request(h.addr, "GET", &query, &remote, b"")
            .await
            .status,
        200
    );
    // Loopback itself is a trusted proxy here, so without a forwarded
    // address the client is unknown: no kick without the token.
    assert_eq!(
        http::get(h.addr, "/rtc/v1/kick-active-users").await.status,
        403
    );
    h.shutdown().await;

    // Loopback may kick without a token unless that is turned off, and unless it forwards
    // someone: a proxy on this host that nobody named in server.trusted_proxies.
    let h = start(rtc_config(|_| {})).await;
    let forwarded = http::request(h.addr, "GET", "/rtc/v1/kick-active-users", &remote, b"").await;
    assert_eq!(forwarded.status, 403);
    assert_eq!(
        http::get(h.addr, "/rtc/v1/kick-active-users").await.status,
        200
    );
    h.shutdown().await;
    let h = start(rtc_config(|c| c.rtc.kick_from_loopback = false)).await;
    assert_eq!(
        http::get(h.addr, "/rtc/v1/kick-active-users").await.status,
        403
    );
    h.shutdown().await;
}

const SECRET: &str = "a-cookie-secret-of-some-length";

#[tokio::test]
async fn difference_signed_cookies_refuse_forged_and_garbled_ones() {
    let h = start(rtc_config(|c| c.rtc.cookie_secret = SECRET.into())).await;
    let cookie = register(h.addr, PREFIX, "signed.user").await;
    let value = cookie.strip_prefix("user_username=").expect("cookie value");
    let (name, sig) = value.rsplit_once('.').expect("name.signature");
    assert_eq!(name, "signed.user");
    assert_eq!(sig.len(), 43, "unpadded base64url of 32 bytes");
    let ok = http::request(h.addr, "GET", "/rtc/v1/user", &[("Cookie", &cookie)], b"").await;
    assert_eq!(ok.status, 200);
    register(h.addr, PREFIX, "victim").await;
    let tampered = format!("user_username=victim.{sig}");
    for forged in [
        "user_username=victim",
        tampered.as_str(),
        "user_username=victim.",
        "user_username=a,b",
    ] {
        let r = http::request(h.addr, "GET", "/rtc/v1/user", &[("Cookie", forged)], b"").await;
        assert_eq!(r.status, 401, "{forged:?}");
        let mut c = connect(h.addr, PREFIX, forged).await;
        assert_eq!(
            closed(&mut c).await,
            (Some(4000), "UNAUTHENTICATED".into()),
            "{forged:?}"
        );
    }
    // The genuine cookie works, and others see the bare name as the originator.
    let mut me = connect(h.addr, PREFIX, &cookie).await;
    send(&mut me, "signed.user", "t", "1").await;
    assert_eq!(
        me.text().await,
        forwarded("signed.user", "signed.user", "t", "1")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_registration_flood_gets_429_per_client_address() {
    let h = start(rtc_config(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
        c.rtc.register_per_minute = 1;
        c.rtc.register_burst = 2;
    }))
    .await;
    let post = |ip: &'static str, name: &'static str| {
        let addr = h.addr;
        async move {
            let body = format!(r#"{{"username":"{name}"}}"#);
            http::request(
                addr,
                "POST",
                "/rtc/v1/register",
                &[
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", ip),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    assert_eq!(post("192.0.2.1", "f1").await.status, 200);
    assert_eq!(post("192.0.2.1", "f2").await.status, 200);
    let r = post("192.0.2.1", "f3").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.text(),
        r#"{"status":"INVALID","message":"too many registrations, try again later"}"#
    );
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        post("192.0.2.2", "f3").await.status,
        200,
        "another client is unaffected"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_the_payload_is_forwarded_byte_for_byte() {
    let h = start(rtc_config(|_| {})).await;
    let mut a = online(h.addr, "a").await;
    let mut b = online(h.addr, "b").await;
    // The original compacted and HTML-escaped it; we copy it exactly.
    let payload =
        r#"{ "sdp" : "<x> & y", "n" : [1, 2 ,3], "big": 12345678901234567890, "u": "\u00e9" }"#;
    send(&mut a, "b", "video-offer", payload).await;
    assert_eq!(b.text().await, forwarded("a", "b", "video-offer", payload));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_the_trailing_newline_can_be_turned_off() {
    let h = start(rtc_config(|c| c.rtc.trailing_newline = false)).await;
    let mut a = online(h.addr, "a").await;
    send(&mut a, "a", "t", "1").await;
    assert_eq!(
        a.text().await,
        r#"{"originator":"a","target":"a","type":"t","payload":1}"#
    );
    send(&mut a, "nobody", "t", "1").await;
    assert_eq!(a.text().await, NOT_FOUND.trim_end());
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_disallowed_origin_is_403_before_the_upgrade() {
    let h = start(rtc_config(|c| {
        c.rtc.origins = vec!["https://app.example".into()]
    }))
    .await;
    let cookie = register(h.addr, PREFIX, "o").await;
    let ok = ws::try_connect(
        h.addr,
        "/rtc/v1/connect",
        &[("Cookie", &cookie), ("Origin", "https://app.example")],
    )
    .await;
    assert!(ok.is_ok());
    drop(ok);
    h.eventually("o is offline", |app| !app.presence.held_here("rtc", "o"))
        .await;
    let refused = ws::try_connect(
        h.addr,
        "/rtc/v1/connect",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
    )
    .await;
    assert!(refused.is_err_and(|e| e.contains("403")));
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_counted_by_reason() {
    let recorder = switchboard::ops::recorder().expect("the test process installs the recorder");
    let h = start(rtc_config(|c| {
        c.rtc.register_per_minute = 1;
        c.rtc.register_burst = 2;
    }))
    .await;
    let cookie = register(h.addr, PREFIX, "counted").await;
    let mut c = connect(h.addr, PREFIX, &cookie).await;
    c.send_text(r#"{"type":"no target"}"#).await;
    assert_eq!(c.text().await, NOT_FOUND);
    let mut second = connect(h.addr, PREFIX, &cookie).await;
    assert_eq!(closed(&mut second).await.0, Some(4000));
    c.send_text("{").await;
    assert_eq!(closed(&mut c).await.0, Some(1007));
    let mut big = connect(h.addr, PREFIX, &cookie).await;
    big.send_text(&"x".repeat(70_000)).await;
    assert_eq!(closed(&mut big).await.0, Some(1009));
    let mut anon = connect(h.addr, PREFIX, "user_username=ghost").await;
    assert_eq!(closed(&mut anon).await.0, Some(4000));
    register_json(h.addr, PREFIX, "x1").await;
    assert_eq!(register_json(h.addr, PREFIX, "x2").await.status, 429);
    assert_eq!(register_json(h.addr, PREFIX, "").await.status, 429);
    h.eventually("too_big is counted", |_| {
        recorder.render().contains(r#"reason="too_big""#)
    })
    .await;
    let text = recorder.render();
    for reason in [
        "missing_target",
        "already_exists",
        "bad_json",
        "too_big",
        "unknown_user",
        "rate_limited",
    ] {
        assert!(
            text.contains(&format!(
                "switchboard_rtc_rejected_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted in:\n{text}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn the_call_page_is_served_natively_and_self_contained() {
    let h = start(rtc_config(|_| {})).await;
    let r = http::get(h.addr, "/rtc/call").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.contains(r#"const BASE = "/rtc";"#));
    assert!(!page.contains("<script src"), "no external scripts");
    assert!(page.contains("RTCPeerConnection"));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_failing_store_answers_503_and_closes_1013() {
    let h = start(rtc_config(|_| {})).await;
    let cookie = register(h.addr, PREFIX, "before").await;
    h.app
        .store
        .as_ref()
        .expect("rtc opened a store")
        .close()
        .await
        .expect("close the store");
    let r = register_json(h.addr, PREFIX, "after").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            503,
            r#"{"status":"ERROR","message":"registration is unavailable, try again later"}"#
        )
    );
    let r = http::request(h.addr, "GET", "/rtc/v1/user", &[("Cookie", &cookie)], b"").await;
    assert_eq!(r.status, 503, "not a 401: the cookie must not be cleared");
    assert_eq!(r.header("clear-site-data"), None);
    let mut c = connect(h.addr, PREFIX, &cookie).await;
    assert_eq!(
        closed(&mut c).await,
        (Some(1013), "store unavailable, try again later".into())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_registration_bodies_are_limited_to_64_kib_and_xml_is_not_read() {
    let h = start(rtc_config(|_| {})).await;
    let big = format!(r#"{{"username":"x","pad":"{}"}}"#, "p".repeat(64 * 1024));
    let r = http::request(
        h.addr,
        "POST",
        "/rtc/v1/register",
        &[("Content-Type", "application/json")],
        big.as_bytes(),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, r#"{"status":"INVALID","message":"body too large"}"#)
    );
    let xml = b"<RegisterRequest><username>x</username></RegisterRequest>";
    let r = http::request(
        h.addr,
        "POST",
        "/rtc/v1/register",
        &[("Content-Type", "application/xml")],
        xml,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"status":"INVALID","message":"invalid body"}"#)
    );
    h.shutdown().await;
}
