//! Hardening (issue 12): bad handshakes, oversized fragmented messages, idle
//! and stalled HTTP connections, the connection caps and slow consumers. Each
//! case ends with a clear status or close code and is counted.

use switchboard_testkit::http;
use switchboard_testkit::raw::RawWs;

use crate::harness::{config, start};

/// The value of the counter `name` with exactly these `labels` (rendered as
/// `k="v"` pairs in this order) in a Prometheus text, 0 if absent.
fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let want = if labels.is_empty() {
        name.to_owned()
    } else {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", inner.join(","))
    };
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| *series == want)
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn metrics() -> String {
    switchboard::ops::recorder()
        .expect("the Prometheus recorder is ours in this test binary")
        .render()
}

fn upgrade_headers(key: &str) -> [(&str, &str); 4] {
    [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
}

/// RFC 6455 §4.2.1: the key must be base64 of 16 bytes; an empty or a 4 KiB
/// key is refused with 400 before any upgrade, on every service, and counted.
#[tokio::test]
async fn a_key_that_is_not_base64_of_16_bytes_gets_400() {
    let h = start(crate::rtc_common::rtc_config(|_| {})).await;
    let handshake = |svc: &str| {
        counter(
            &metrics(),
            "switchboard_http_errors_total",
            &[("service", svc), ("reason", "handshake")],
        )
    };
    let long = "A".repeat(4096);
    for (svc, path) in [
        ("pubsub", "/pubsub/k"),
        ("pairing", "/v1/ws/"),
        ("rtc", "/rtc/v1/connect"),
    ] {
        let before = handshake(svc);
        for key in [
            "",
            long.as_str(),
            "dGhlIHNhbXBsZSBub25jZQ",
            "c2l4dGVlbiBieXRlcyBsb25nIQ==",
        ] {
            let r = http::request(h.addr, "GET", path, &upgrade_headers(key), b"").await;
            assert_eq!(
                r.status,
                400,
                "{svc} with key {:?}: {}",
                &key[..key.len().min(30)],
                r.text()
            );
        }
        assert!(handshake(svc) >= before + 4, "{svc}: refusals counted");
    }
    // A good key still upgrades.
    let r = http::request(
        h.addr,
        "GET",
        "/pubsub/k",
        &upgrade_headers("dGhlIHNhbXBsZSBub25jZQ=="),
        b"",
    )
    .await;
    assert_eq!(r.status, 101);
    h.shutdown().await;
}

/// Fragments that add up to more than the limit end like one oversized
/// frame: Close 1009 with a reason (not a dropped TCP connection), counted.
#[tokio::test]
async fn fragments_adding_up_to_more_than_the_limit_get_close_1009() {
    let h = start(config(|c| c.pubsub.max_message = 100)).await;
    let too_big = || {
        counter(
            &metrics(),
            "switchboard_ws_disconnects_total",
            &[("service", "pubsub"), ("reason", "too_big")],
        )
    };
    let before = too_big();
    let mut ws = RawWs::connect(h.addr, "/pubsub/frag").await;
    ws.send_fragment(1, &[b'a'; 60], false).await;
    ws.send_fragment(0, &[b'b'; 60], false).await;
    ws.send_fragment(0, &[b'c'; 60], true).await;
    let close = ws
        .until_close()
        .await
        .expect("a Close frame, not a dropped connection");
    assert_eq!(close.close_code(), Some(1009));
    assert!(close.payload.len() > 2, "with a reason");
    // And one oversized frame, for comparison.
    let mut one = RawWs::connect(h.addr, "/pubsub/frag").await;
    one.send_frame(1, &[b'x'; 101]).await;
    assert_eq!(
        one.until_close().await.and_then(|f| f.close_code()),
        Some(1009)
    );
    assert!(too_big() >= before + 2);
    h.shutdown().await;
}
