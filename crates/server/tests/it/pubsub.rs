//! The pubsub service (Pinghub drop-in) end to end: one test per behaviour in
//! `shared/specs/pinghub.md`, and one per deliberate difference listed in
//! `docs/compatibility.md`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::harness::{Harness, config, start};
use switchboard_services::pubsub::PubsubStats;
use switchboard_testkit::http;
use switchboard_testkit::raw::RawWs;
use switchboard_testkit::ws::{self, Event};

/// The headers of a valid WebSocket handshake, for raw HTTP requests.
const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// One of the pubsub service's running totals.
fn stat(h: &Harness, pick: fn(&PubsubStats) -> &AtomicU64) -> u64 {
    let svc = h.app.pubsub.as_ref().expect("pubsub enabled");
    pick(svc.stats()).load(Ordering::Relaxed)
}

#[tokio::test]
async fn ws_message_reaches_every_subscriber_sender_included() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/room").await;
    let mut b = ws::connect(h.addr, "/pubsub/room").await;
    let mut other = ws::connect(h.addr, "/pubsub/elsewhere").await;
    a.send_text("hello").await;
    assert_eq!(a.text().await, "hello");
    assert_eq!(b.text().await, "hello");
    other.expect_silence(100).await;
    h.shutdown().await;
}

#[tokio::test]
async fn post_publishes_with_pinghubs_reply() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/chan/a").await;
    let mut b = ws::connect(h.addr, "/pubsub/chan/a").await;
    let r = http::request(
        h.addr,
        "POST",
        "/pubsub/chan/a",
        &[("Content-Type", "application/json")],
        "héllo ✓".as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, b"OK\n");
    assert_eq!(a.text().await, "héllo ✓");
    assert_eq!(b.text().await, "héllo ✓");
    h.shutdown().await;
}

#[tokio::test]
async fn empty_ws_message_is_a_keepalive_echoed_to_the_sender_only() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/k").await;
    let mut b = ws::connect(h.addr, "/pubsub/k").await;
    a.send_text("").await;
    assert_eq!(a.text().await, "");
    b.expect_silence(100).await;
    h.shutdown().await;
}

#[tokio::test]
async fn empty_post_is_accepted_and_not_broadcast() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/e").await;
    let r = http::post(h.addr, "/pubsub/e", b"").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK\n"));
    a.expect_silence(100).await;
    h.shutdown().await;
}

#[tokio::test]
async fn channel_is_the_decoded_path_and_the_query_is_ignored() {
    let h = start(config(|_| {})).await;
    let mut q = ws::connect(h.addr, "/pubsub/q?x=1").await;
    let mut slash = ws::connect(h.addr, "/pubsub/a%2Fb").await;
    assert_eq!(
        http::post(h.addr, "/pubsub/q?y=2", b"one").await.status,
        200
    );
    assert_eq!(q.text().await, "one");
    assert_eq!(http::post(h.addr, "/pubsub/a/b", b"two").await.status, 200);
    assert_eq!(slash.text().await, "two");
    h.shutdown().await;
}

#[tokio::test]
async fn bad_paths_get_pinghubs_400s_for_every_method() {
    let h = start(config(|_| {})).await;
    for path in ["/pubsub/%FF", "/pubsub/%ED%A0%80"] {
        let r = http::get(h.addr, path).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(
            r.text(),
            "Error: bad request. Path must be valid Unicode (UTF-8).\n"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(http::post(h.addr, path, b"x").await.status, 400);
    }
    let ok = format!("/pubsub/{}", "a".repeat(255));
    let long = format!("/pubsub/{}", "a".repeat(256));
    assert_eq!(http::get(h.addr, &ok).await.status, 200);
    let r = http::get(h.addr, &long).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Error: bad request. Path length must be 1-256 Unicode characters (UTF-8).\n"
    );
    let refused = ws::try_connect(h.addr, &long, &[]).await;
    assert!(
        refused.is_err(),
        "a WebSocket to a bad path must not upgrade"
    );
    let ok_e = format!("/pubsub/{}", "%C3%A9".repeat(255));
    assert!(ws::try_connect(h.addr, &ok_e, &[]).await.is_ok());
    h.shutdown().await;
}

#[tokio::test]
async fn get_serves_a_self_contained_test_page_with_the_path_escaped() {
    let h = start(config(|_| {})).await;
    let r = http::get(h.addr, "/pubsub/%3Cxss%3E").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.contains("/&lt;xss&gt;"), "path shown escaped");
    assert!(!page.contains("<xss>"), "path never reflected raw");
    assert!(!page.contains("googleapis"), "no CDN");
    assert!(page.contains("new WebSocket"));
    h.shutdown().await;
}

#[tokio::test]
async fn other_methods_get_405() {
    let h = start(config(|_| {})).await;
    for m in ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let r = http::request(h.addr, m, "/pubsub/x", &[], b"").await;
        assert_eq!(r.status, 405, "{m}");
        assert!(r.body.is_empty(), "{m} body");
    }
    let r = http::request(h.addr, "POST", "/pubsub/x", &UPGRADE, b"").await;
    assert_eq!((r.status, r.text().as_str()), (405, "Method Not Allowed\n"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_pinned_origin_follows_pinghubs_rule() {
    let h = start(config(|c| {
        c.pubsub.origins = vec!["https://example.com".into()]
    }))
    .await;
    for ok in [
        "https://example.com",
        "https://example.com/some/path?x",
        "https://user@example.com",
    ] {
        assert!(
            ws::try_connect(h.addr, "/pubsub/o", &[("Origin", ok)])
                .await
                .is_ok(),
            "{ok}"
        );
    }
    assert!(
        ws::try_connect(h.addr, "/pubsub/o", &[]).await.is_ok(),
        "missing Origin"
    );
    for bad in [
        "https://example.com:443",
        "https://EXAMPLE.com",
        "http://example.com",
        "null",
    ] {
        let r = http::request(
            h.addr,
            "GET",
            "/pubsub/o",
            &[[("Origin", bad)].as_slice(), &UPGRADE].concat(),
            b"",
        )
        .await;
        assert_eq!((r.status, r.text().as_str()), (403, "Forbidden\n"), "{bad}");
    }
    // POST is not origin-checked, as in Pinghub.
    assert_eq!(
        http::request(
            h.addr,
            "POST",
            "/pubsub/o",
            &[("Origin", "https://evil.example")],
            b"x"
        )
        .await
        .status,
        200
    );
    h.shutdown().await;
}

#[tokio::test]
async fn messages_up_to_64_kib_relay_and_larger_close_1009() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/big").await;
    let max = "x".repeat(65536);
    a.send_text(&max).await;
    assert_eq!(a.text().await.len(), 65536);
    a.send_text(&format!("{max}y")).await;
    let (code, _) = a.closed().await;
    assert_eq!(code, Some(1009));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_invalid_utf8_closes_1007_and_others_are_unharmed() {
    let h = start(config(|_| {})).await;
    let mut good = ws::connect(h.addr, "/pubsub/u").await;
    let mut bad = RawWs::connect(h.addr, "/pubsub/u").await;
    bad.send_frame(1, &[0x66, 0xFF, 0x6F]).await;
    let close = bad.until_close().await.expect("a close frame, not a drop");
    assert_eq!(close.close_code(), Some(1007));
    good.expect_silence(50).await;
    good.send_text("still here").await;
    assert_eq!(good.text().await, "still here");
    h.shutdown().await;
}

#[tokio::test]
async fn difference_invalid_utf8_post_is_400() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/u").await;
    let r = http::post(h.addr, "/pubsub/u", &[0x66, 0xFF]).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("UTF-8"));
    a.expect_silence(50).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_post_bodies_are_limited_with_413() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/p").await;
    assert_eq!(
        http::post(h.addr, "/pubsub/p", "x".repeat(65536).as_bytes())
            .await
            .status,
        200
    );
    assert_eq!(a.text().await.len(), 65536);
    let r = http::post(h.addr, "/pubsub/p", "x".repeat(65537).as_bytes()).await;
    assert_eq!(r.status, 413);
    a.expect_silence(50).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_binary_frames_close_1003() {
    let h = start(config(|_| {})).await;
    let mut other = ws::connect(h.addr, "/pubsub/bin").await;
    let mut a = ws::connect(h.addr, "/pubsub/bin").await;
    a.send_binary(b"\x01\x02").await;
    let (code, reason) = a.closed().await;
    assert_eq!(code, Some(1003));
    assert!(!reason.is_empty());
    other.expect_silence(50).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_subscribed_before_the_101() {
    let h = start(config(|_| {})).await;
    for i in 0..50 {
        let mut c = ws::connect(h.addr, "/pubsub/race").await;
        let body = format!("m{i}");
        assert_eq!(
            http::post(h.addr, "/pubsub/race", body.as_bytes())
                .await
                .status,
            200
        );
        assert_eq!(c.text().await, body);
    }
    assert_eq!(stat(&h, |s| &s.drops), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn difference_concurrent_posts_are_never_lost_and_keep_one_order() {
    let h = start(config(|_| {})).await;
    let mut subs = Vec::new();
    for _ in 0..10 {
        subs.push(ws::connect(h.addr, "/pubsub/busy").await);
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..800 {
                    got.push(c.text().await);
                }
                got
            })
        })
        .collect();
    let posters: Vec<_> = (0..4)
        .map(|p| {
            let addr = h.addr;
            tokio::spawn(async move {
                for i in 0..200 {
                    let r = http::post(addr, "/pubsub/busy", format!("{p}-{i}").as_bytes()).await;
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for p in posters {
        p.await.unwrap();
    }
    let mut first: Option<Vec<String>> = None;
    for r in readers {
        let got = r.await.unwrap();
        assert_eq!(got.len(), 800);
        for p in 0..4 {
            let mine: Vec<_> = got
                .iter()
                .filter(|m| m.starts_with(&format!("{p}-")))
                .cloned()
                .collect();
            let want: Vec<_> = (0..200).map(|i| format!("{p}-{i}")).collect();
            assert_eq!(mine, want, "poster {p} in order, none lost");
        }
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "every subscriber sees one order"),
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn difference_concurrent_join_and_leave_neither_crashes_nor_leaks() {
    let h = start(config(|_| {})).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let addr = h.addr;
            tokio::spawn(async move {
                for _ in 0..50 {
                    let mut c = ws::connect(addr, "/pubsub/churn").await;
                    c.send_text("x").await;
                    c.close(1000, "bye").await;
                    assert!(matches!(
                        c.until_closed().await,
                        Some((Some(1000), _)) | None
                    ));
                }
            })
        })
        .collect();
    for _ in 0..100 {
        assert_eq!(http::post(h.addr, "/pubsub/churn", b"p").await.status, 200);
    }
    for t in tasks {
        t.await.unwrap();
    }
    h.eventually("every connection gone", |app| app.registry.is_empty())
        .await;
    assert_eq!(h.app.pubsub.as_ref().unwrap().channel_count(), 0);
    let mut c = ws::connect(h.addr, "/pubsub/churn").await;
    assert_eq!(
        http::post(h.addr, "/pubsub/churn", b"alive").await.status,
        200
    );
    assert_eq!(c.text().await, "alive");
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_post_without_subscribers_is_counted_as_dropped() {
    let h = start(config(|_| {})).await;
    let stats = || stat(&h, |s| &s.drops);
    let before = stats();
    assert_eq!(http::post(h.addr, "/pubsub/nobody", b"x").await.status, 200);
    assert_eq!(stats(), before + 1);
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_slow_subscriber_gets_close_1013_and_others_get_everything() {
    let h = start(config(|c| {
        c.pubsub.outbox_messages = 8;
        c.pubsub.write_timeout_secs = 30;
    }))
    .await;
    let mut fast = ws::connect(h.addr, "/pubsub/slow").await;
    let mut slow = RawWs::connect(h.addr, "/pubsub/slow").await;
    let payload = "z".repeat(60_000);
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            match fast.next().await {
                Event::Text(t) if t == "done" => return n,
                Event::Text(_) => n += 1,
                other => panic!("fast subscriber got {other:?}"),
            }
        }
    });
    let mut sent = 0;
    // Counted by the socket runtime as soon as the overflow ends the socket.
    let slow_count = || {
        let text = switchboard::ops::recorder()
            .expect("the recorder is ours in this test binary")
            .render();
        text.lines()
            .find(|l| {
                l.starts_with(
                    "switchboard_slow_consumers_total{service=\"pubsub\",cause=\"outbox_full\"}",
                )
            })
            .and_then(|l| l.rsplit_once(' '))
            .map_or(0, |(_, v)| v.parse::<f64>().unwrap_or(0.0) as u64)
    };
    let before = slow_count();
    while slow_count() == before {
        assert!(sent < 5000, "the slow subscriber was never disconnected");
        assert_eq!(
            http::post(h.addr, "/pubsub/slow", payload.as_bytes())
                .await
                .status,
            200
        );
        sent += 1;
    }
    assert_eq!(
        http::post(h.addr, "/pubsub/slow", b"done").await.status,
        200
    );
    assert_eq!(
        reader.await.unwrap(),
        sent,
        "the fast subscriber got every message"
    );
    let close = slow
        .until_close()
        .await
        .expect("a close frame, not a silent drop");
    assert_eq!(close.close_code(), Some(1013));
    assert!(String::from_utf8_lossy(&close.payload[2..]).contains("slow"));
    h.eventually("the console's count", |_| {
        stat(&h, |s| &s.slow_consumers) == 1
    })
    .await;
    h.shutdown().await;
}

/// `switchboard_slow_consumers_total{service="pubsub",cause}`.
fn pubsub_slow_consumers(cause: &str) -> u64 {
    let text = switchboard::ops::recorder()
        .expect("the recorder is ours in this test binary")
        .render();
    let series =
        format!("switchboard_slow_consumers_total{{service=\"pubsub\",cause=\"{cause}\"}}");
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .map_or(0, |(_, v)| v.parse::<f64>().unwrap_or(0.0) as u64)
}

/// Difference: Pinghub kicks a subscriber whose 256-message buffer fills,
/// which a busy server does to healthy readers (their writer was not run for
/// a few ms). Here a burst of thousands of messages published back to back
/// reaches every reading subscriber with the default settings.
#[tokio::test]
async fn difference_a_burst_beyond_256_messages_reaches_every_reading_subscriber() {
    use futures_util::SinkExt as _;
    const BURST: usize = 5_000;
    let h = start(config(|_| {})).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut sub = ws::connect(h.addr, "/pubsub/burst").await;
        readers.push(tokio::spawn(async move {
            for i in 0..BURST {
                match sub.next().await {
                    Event::Text(t) => assert_eq!(t, format!("m{i:05}"), "in order"),
                    other => panic!("message {i}: got {other:?} instead"),
                }
            }
            sub
        }));
    }
    let uri = format!("ws://{}/pubsub/burst", h.addr);
    let (mut publisher, _) = tokio_websockets::ClientBuilder::new()
        .uri(&uri)
        .expect("uri")
        .connect()
        .await
        .expect("publisher connects");
    // Every message into the socket before one flush: the server reads them
    // as fast as it can and queues them for each subscriber.
    for i in 0..BURST {
        publisher
            .feed(tokio_websockets::Message::text(format!("m{i:05}")))
            .await
            .expect("feed");
    }
    publisher.flush().await.expect("flush");
    for r in readers {
        let mut sub = r
            .await
            .expect("every subscriber got every message, in order");
        sub.expect_silence(50).await;
    }
    h.shutdown().await;
}

/// A subscriber that stops reading is told from a busy server by its socket:
/// not writable for `slow_consumer_secs` with `slow_consumer_bytes` queued
/// behind it, it is ended with 1013 and counted as `not_reading`, long before
/// the memory cap or the write timeout; a reading subscriber is unharmed.
#[tokio::test]
async fn a_subscriber_that_does_not_read_is_ended_1013_as_not_reading() {
    let h = start(config(|c| {
        c.pubsub.outbox_messages = 1_000_000;
        c.pubsub.outbox_bytes = 1 << 30;
        c.pubsub.slow_consumer_bytes = 64 * 1024;
        c.pubsub.slow_consumer_secs = 1;
        c.pubsub.write_timeout_secs = 60;
    }))
    .await;
    let before = pubsub_slow_consumers("not_reading");
    let mut slow = RawWs::connect_with(h.addr, "/pubsub/mute", &[], Some(4096)).await;
    let mut healthy = ws::connect(h.addr, "/pubsub/mute").await;
    let payload = "q".repeat(16 * 1024);
    let started = std::time::Instant::now();
    let mut sent = 0;
    while pubsub_slow_consumers("not_reading") == before {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the subscriber that does not read was never ended ({sent} sent)"
        );
        assert_eq!(
            http::post(h.addr, "/pubsub/mute", payload.as_bytes())
                .await
                .status,
            200
        );
        assert_eq!(healthy.text().await.len(), payload.len());
        sent += 1;
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "not before its socket was unwritable for slow_consumer_secs"
    );
    // Reading again, it finds what the socket held and then the Close 1013
    // (or the dropped connection, if the Close did not fit in time).
    if let Some(close) = slow.until_close().await {
        assert_eq!(close.close_code(), Some(1013));
    }
    assert_eq!(
        http::post(h.addr, "/pubsub/mute", b"after").await.status,
        200
    );
    assert_eq!(healthy.text().await, "after");
    h.shutdown().await;
}

#[tokio::test]
async fn server_pings_and_a_client_that_never_pongs_is_closed() {
    let h = start(config(|c| {
        c.pubsub.ping_interval_secs = 1;
        c.pubsub.pong_timeout_secs = 2;
    }))
    .await;
    let mut polite = ws::connect(h.addr, "/pubsub/ka").await;
    // The polite client keeps reading, so its library answers every ping.
    let polite = tokio::spawn(async move { polite.text().await });
    let mut mute = RawWs::connect(h.addr, "/pubsub/ka").await;
    let first = mute.read_frame().await.expect("a ping");
    assert_eq!(first.opcode, 9, "server pings");
    // Data does not count as liveness; only pongs do.
    mute.send_frame(1, b"").await;
    let close = mute.until_close().await.expect("closed with a frame");
    assert_eq!(close.close_code(), Some(1008));
    assert_eq!(http::post(h.addr, "/pubsub/ka", b"still").await.status, 200);
    assert_eq!(polite.await.unwrap(), "still", "a client that pongs stays");
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_close_is_answered() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/bye").await;
    a.close(1000, "bye").await;
    assert_eq!(a.closed().await.0, Some(1000));
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_refuses_new_ones() {
    let h = start(config(|_| {})).await;
    let mut a = ws::connect(h.addr, "/pubsub/s").await;
    let mut b = ws::connect(h.addr, "/pubsub/t").await;
    let addr = h.addr;
    h.app.shutdown.cancel();
    for c in [&mut a, &mut b] {
        let (code, reason) = c.closed().await;
        assert_eq!(code, Some(1001));
        assert_eq!(reason, "server shutting down");
    }
    h.shutdown().await;
    assert!(
        ws::try_connect(addr, "/pubsub/s", &[]).await.is_err(),
        "no new sockets after shutdown"
    );
}

#[tokio::test]
async fn unix_socket_listener_serves_and_removes_its_file() {
    let dir = std::env::temp_dir().join(format!("sb-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pubsub.sock");
    let p = path.to_str().unwrap().to_owned();
    let h = start(config(|c| {
        c.server.listen = vec!["127.0.0.1:0".into(), p.clone()]
    }))
    .await;
    let mut sub = ws::connect(h.addr, "/pubsub/unix").await;
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"POST /pubsub/unix HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(sub.text().await, "hello");
    h.shutdown().await;
    assert!(!path.exists(), "socket file removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn console_lists_services_and_serves_live_counters() {
    let h = start(config(|_| {})).await;
    let page = http::get(h.addr, "/").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("pubsub") && text.contains("/pubsub/demo"),
        "links to the demo page"
    );
    let _c = ws::connect(h.addr, "/pubsub/demo").await;
    let s = http::get(h.addr, "/api/stats").await;
    assert_eq!(s.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(v["connections"], 1);
    assert_eq!(v["channels"], 1);
    assert_eq!(http::get(h.addr, "/pubsub/demo").await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_counted_in_metrics() {
    let Some(handle) = switchboard::ops::recorder() else {
        panic!("recorder already installed elsewhere in this test binary");
    };
    let h = start(config(|c| crate::pubsub_history::keep(c, 10))).await;
    assert_eq!(http::get(h.addr, "/pubsub/%FF").await.status, 400);
    let _ = http::post(h.addr, "/pubsub/m", "x".repeat(70_000).as_bytes()).await;
    for path in ["/pubsub/feed/a?last=abc", "/pubsub/chat?last=1"] {
        let r = http::request(h.addr, "GET", path, &UPGRADE, b"").await;
        assert_eq!(r.status, 400, "{path}");
    }
    let text = handle.render();
    assert!(text.contains("reason=\"path_utf8\""), "{text}");
    assert!(text.contains("reason=\"too_large\""), "{text}");
    assert!(text.contains("reason=\"history_query\""), "{text}");
    assert!(text.contains("reason=\"no_history\""), "{text}");
    h.shutdown().await;
}

#[tokio::test]
async fn paths_are_not_cleaned_or_redirected() {
    let h = start(config(|c| c.pubsub.prefix = String::new())).await;
    let mut double = ws::connect(h.addr, "//a").await;
    let mut single = ws::connect(h.addr, "/a").await;
    let r = http::post(h.addr, "//a", b"double").await;
    assert_eq!(r.status, 200, "no 301");
    assert_eq!(double.text().await, "double");
    single.expect_silence(50).await;
    assert_eq!(http::get(h.addr, "/b/../c").await.status, 200);
    h.shutdown().await;
}
