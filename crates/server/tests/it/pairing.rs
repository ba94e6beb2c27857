//! The pairing service (channelserver drop-in) end to end, in process: one test
//! per behaviour in `shared/specs/channelserver.md`, and one per deliberate
//! difference listed in `docs/compatibility.md` (names start with `difference_`).
//!
//! Timers are configured short (seconds) where a test needs one to fire; no test
//! sleeps where it can await an event.

use crate::harness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{Harness, start};
use serde_json::{Value, json};
use switchboard::config::PairingSection;
use switchboard_testkit::http;
use switchboard_testkit::raw::RawWs;
use switchboard_testkit::ws::{self, Client, Event};
use tokio::net::UdpSocket;

const PROBE_UA: (&str, &str) = ("User-Agent", "cs-probe/1.0");
const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// `shared/testdata/GeoIP2-City-Test.mmdb` (or `$SWITCHBOARD_TESTDATA/…`).
fn test_mmdb() -> String {
    let dir = std::env::var_os("SWITCHBOARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let path = dir.join("GeoIP2-City-Test.mmdb");
    assert!(
        path.is_file(),
        "the GeoIP test database is required at {}",
        path.display()
    );
    path.display().to_string()
}

/// A server with the pairing service adjusted by `adjust` (and the Prometheus recorder installed).
async fn server(adjust: impl FnOnce(&mut PairingSection)) -> Harness {
    switchboard::ops::recorder();
    start(harness::config(|c| adjust(&mut c.pairing))).await
}

/// Connects to `path` with `headers`, panicking on a refused handshake.
async fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
    ws::try_connect(addr, path, headers)
        .await
        .unwrap_or_else(|e| panic!("connect {path}: {e}"))
}

/// Reads the first frame and returns the channel id it announces, checking its shape.
async fn hello(c: &mut Client) -> String {
    let text = c.text().await;
    let v: Value = serde_json::from_str(&text).expect("hello is JSON");
    let id = v["channelid"].as_str().expect("channelid").to_owned();
    assert_eq!(
        text,
        format!(r#"{{"channelid":"{id}","link":"/v1/ws/{id}"}}"#)
    );
    id
}

/// Creates a channel with `headers`; returns the creator and the id.
async fn create(addr: SocketAddr, headers: &[(&str, &str)]) -> (Client, String) {
    let mut c = connect(addr, "/v1/ws/", headers).await;
    let id = hello(&mut c).await;
    (c, id)
}

/// Joins channel `id` with `headers`, checking the hello frame carries the same id.
async fn join(addr: SocketAddr, id: &str, headers: &[(&str, &str)]) -> Client {
    let mut c = connect(addr, &format!("/v1/ws/{id}"), headers).await;
    assert_eq!(hello(&mut c).await, id.trim_end_matches('='));
    c
}

/// Joins channel `id` and expects a refusal: a 101, then a Close frame with no data before it.
async fn refused(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (Option<u16>, String) {
    let mut c = connect(addr, path, headers).await;
    match c.next().await {
        Event::Close(code, reason) => (code, reason),
        other => panic!("expected a refusal close, got {other:?}"),
    }
}

fn envelope(text: &str) -> Value {
    serde_json::from_str(text).expect("envelope is JSON")
}

fn xff(ip: &'static str) -> (&'static str, &'static str) {
    ("X-Forwarded-For", ip)
}

/// The Prometheus exposition of this test process.
fn prometheus() -> String {
    switchboard::ops::recorder()
        .map(|h| h.render())
        .unwrap_or_default()
}

fn counted(metric_line_start: &str) -> bool {
    prometheus()
        .lines()
        .any(|l| l.starts_with(metric_line_start) && !l.ends_with(" 0"))
}

/// A UDP socket standing in for statsd.
struct Statsd(UdpSocket);

impl Statsd {
    async fn new() -> Statsd {
        Statsd(UdpSocket::bind("127.0.0.1:0").await.expect("bind udp"))
    }

    fn host(&self) -> String {
        self.0.local_addr().expect("addr").to_string()
    }

    /// Collects datagrams until every line of `want` was seen (by prefix; a prefix
    /// listed twice needs two lines), for at most 10 s.
    async fn expect(&self, want: &[&str]) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let seen = |got: &[String], w: &str| got.iter().filter(|g| g.starts_with(w)).count();
        let needed = |w: &str| want.iter().filter(|x| **x == w).count();
        while !want.iter().all(|w| seen(&got, w) >= needed(w)) {
            match tokio::time::timeout_at(deadline, self.0.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    got.extend(text.lines().map(str::to_owned));
                }
                Ok(Err(e)) => panic!("statsd socket: {e}"),
                Err(_) => panic!("statsd lines {want:?} not all seen; got {got:?}"),
            }
        }
        got
    }
}

// ---- The protocol ----------------------------------------------------------------------

#[tokio::test]
async fn the_creator_first_receives_its_channel_id_and_link() {
    let h = server(|_| {}).await;
    let (_a, id) = create(h.addr, &[]).await;
    assert_eq!(id.len(), 22);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{id}"
    );
    assert_eq!(h.app.pairing.as_ref().expect("pairing").channel_count(), 1);
    let (_b, other) = create(h.addr, &[]).await;
    assert_ne!(id, other, "every create makes a new channel");
    h.shutdown().await;
}

#[tokio::test]
async fn a_joiner_first_receives_the_canonical_id_even_when_it_used_padding() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &format!("{id}=="), &[]).await;
    b.send_text("x").await;
    assert_eq!(envelope(&a.text().await)["message"], "x");
    // Percent-encoded padding is the same id.
    let mut c = connect(h.addr, &format!("/v1/ws/{id}%3D"), &[]).await;
    assert_eq!(hello(&mut c).await, id);
    h.shutdown().await;
}

#[tokio::test]
async fn text_is_trimmed_and_relayed_to_every_other_member_never_echoed() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[PROBE_UA]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let mut c = join(h.addr, &id, &[]).await;
    a.send_text("  aGVsbG8gZnJvbSBB  ").await;
    let want =
        r#"{"message":"aGVsbG8gZnJvbSBB","sender":{"remote":"127.0.0.1","ua":"cs-probe/1.0"}}"#;
    assert_eq!(b.text().await, want);
    assert_eq!(c.text().await, want);
    a.expect_silence(100).await;
    h.shutdown().await;
}

#[tokio::test]
async fn sender_metadata_is_each_senders_own() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[("User-Agent", "probe-A")]).await;
    let mut b = join(h.addr, &id, &[("User-Agent", "probe-B")]).await;
    b.send_text("cmVwbHkgZnJvbSBC").await;
    assert_eq!(
        a.text().await,
        r#"{"message":"cmVwbHkgZnJvbSBC","sender":{"remote":"127.0.0.1","ua":"probe-B"}}"#
    );
    a.send_text("b25l").await;
    assert_eq!(
        envelope(&b.text().await)["sender"],
        json!({"remote": "127.0.0.1", "ua": "probe-A"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn binary_frames_are_ignored() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    b.send_binary(&[1, 2, 3, 4]).await;
    a.expect_silence(100).await;
    b.send_text("still here").await;
    assert_eq!(envelope(&a.text().await)["message"], "still here");
    assert!(counted(
        r#"switchboard_pairing_events_total{event="msg.binary_ignored"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn messages_sent_alone_are_dropped_but_counted_against_the_limit() {
    let h = server(|p| p.max_exchanges = 3).await;
    let (mut a, id) = create(h.addr, &[]).await;
    for i in 0..3 {
        a.send_text(&format!("m{i}")).await;
    }
    a.expect_silence(50).await;
    let mut b = join(h.addr, &id, &[]).await;
    b.expect_silence(50).await;
    b.send_text("fourth").await;
    assert_eq!(a.closed().await.0, Some(4429));
    assert_eq!(b.closed().await.0, Some(4429));
    h.shutdown().await;
}

#[tokio::test]
async fn the_server_pings_every_heartbeat_interval() {
    let h = server(|p| p.heartbeat_interval = 1).await;
    let (mut a, _) = create(h.addr, &[]).await;
    let started = Instant::now();
    assert_eq!(a.next_raw().await, Event::Ping);
    assert_eq!(a.next_raw().await, Event::Ping);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    h.shutdown().await;
}

// ---- Routes and ids --------------------------------------------------------------------

#[tokio::test]
async fn difference_malformed_ids_are_upgraded_and_closed_as_unknown_channels() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| p.statsd_host = host).await;
    let bad = [
        "AAAA",                             // the original panicked
        "!!!!notb64",                       // the original silently made a new channel
        "0123456789abcdef0123456789abcdef", // a 32-character hex uuid: the original's test suite uses one
        &"x".repeat(30),
        "xdp7DlFoK9h6sMtcJJWTqh", // non-canonical final character
        "=",
    ];
    for id in bad {
        let mut c = ws::try_connect(h.addr, &format!("/v1/ws/{id}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{id}: the upgrade is accepted: {e}"));
        assert_eq!(
            c.closed().await,
            (
                Some(4404),
                "unknown channel: malformed channel id".to_owned()
            ),
            "{id}"
        );
    }
    assert_eq!(h.app.pairing.as_ref().expect("pairing").channel_count(), 0);
    statsd
        .expect(&["channelserver.conn.request:1|c|#error"])
        .await;
    h.shutdown().await;
}

#[tokio::test]
async fn routes_and_methods() {
    let h = start(harness::config(|c| c.console.enabled = false)).await;
    let id = "xdp7DlFoK9h6sMtcJJWTqg";
    for path in ["/v1/ws", &format!("/v1/ws/{id}/extra"), "/"] {
        let r = http::request(h.addr, "GET", path, &UPGRADE, b"").await;
        assert_eq!(r.status, 404, "{path}");
    }
    for path in ["/v1/ws/", &format!("/v1/ws/{id}")] {
        let r = http::request(h.addr, "POST", path, &UPGRADE, b"").await;
        assert_eq!((r.status, r.header("allow")), (405, Some("GET")), "{path}");
    }
    let r = http::get(h.addr, "/v1/ws/").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "No WebSocket Upgrade header found\n")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn joining_an_unknown_channel_is_refused_with_4404() {
    let h = server(|_| {}).await;
    let (code, reason) = refused(h.addr, "/v1/ws/xdp7DlFoK9h6sMtcJJWTqg", &[]).await;
    assert_eq!((code, reason.as_str()), (Some(4404), "unknown channel"));
    assert_eq!(
        h.app.pairing.as_ref().expect("pairing").channel_count(),
        0,
        "no channel was created"
    );
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.unknown_channel"}"#
    ));
    h.shutdown().await;
}

// ---- Members coming and going ----------------------------------------------------------

#[tokio::test]
async fn a_leaving_peer_is_not_announced_and_the_channel_lives_on() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    a.close(1000, "bye").await;
    assert!(
        matches!(a.next().await, Event::Close(Some(_), _)),
        "a client's Close is answered"
    );
    b.expect_silence(100).await;
    b.send_text("anyone?").await;
    let mut c = join(h.addr, &id, &[]).await;
    b.send_text("hello C").await;
    assert_eq!(envelope(&c.text().await)["message"], "hello C");
    h.shutdown().await;
}

#[tokio::test]
async fn the_channel_is_deleted_when_its_last_member_leaves() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[]).await;
    a.close(1000, "").await;
    let _ = a.next().await;
    h.eventually("the channel is gone", |app| {
        app.pairing.as_ref().is_some_and(|p| p.channel_count() == 0)
    })
    .await;
    let (code, _) = refused(h.addr, &format!("/v1/ws/{id}"), &[]).await;
    assert_eq!(code, Some(4404));
    h.shutdown().await;
}

#[tokio::test]
async fn a_connection_past_max_channel_connections_is_refused_with_4409() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| p.statsd_host = host).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let _c = join(h.addr, &id, &[]).await;
    let (code, reason) = refused(h.addr, &format!("/v1/ws/{id}"), &[]).await;
    assert_eq!((code, reason.as_str()), (Some(4409), "channel full"));
    a.send_text("members unharmed").await;
    assert_eq!(envelope(&b.text().await)["message"], "members unharmed");
    statsd.expect(&["channelserver.conn.max.conn:1|c"]).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_after_the_second_connection_joiners_must_share_an_address() {
    let h = server(|p| {
        p.max_channel_connections = 4;
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (mut a, id) = create(h.addr, &[xff("81.2.69.142")]).await;
    let _b = join(h.addr, &id, &[xff("216.160.83.56")]).await;
    let (code, reason) = refused(h.addr, &format!("/v1/ws/{id}"), &[xff("89.160.20.112")]).await;
    assert_eq!(
        (code, reason.as_str()),
        (Some(4403), "address not in channel")
    );
    let mut c = join(h.addr, &id, &[xff("216.160.83.56")]).await;
    a.send_text("to B and C").await;
    assert_eq!(envelope(&c.text().await)["sender"]["remote"], "81.2.69.142");
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.foreign_address"}"#
    ));
    h.shutdown().await;
}

// ---- Limits ----------------------------------------------------------------------------

#[tokio::test]
async fn the_message_past_max_exchanges_ends_the_whole_channel() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| p.statsd_host = host).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let (mut other_a, other_id) = create(h.addr, &[]).await;
    let mut other_b = join(h.addr, &other_id, &[]).await;
    for i in 0..10 {
        let (from, to) = if i % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        from.send_text(&format!("m{i}")).await;
        assert_eq!(envelope(&to.text().await)["message"], format!("m{i}"));
    }
    a.send_text("eleven").await;
    let want = (Some(4429), "channel message limit reached".to_owned());
    assert_eq!(b.closed().await, want, "the 11th message is not delivered");
    assert_eq!(a.closed().await, want);
    other_a.send_text("unharmed").await;
    assert_eq!(envelope(&other_b.text().await)["message"], "unharmed");
    statsd.expect(&["channelserver.conn.max.msg:1|c"]).await;
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.max.msg"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn max_data_counts_envelope_bytes_with_one_message_of_overshoot() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| {
        p.max_data = 200;
        p.statsd_host = host;
    })
    .await;
    // Without a User-Agent, an envelope is the payload plus 46 bytes.
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let hundred = "x".repeat(100);
    a.send_text(&hundred).await;
    assert_eq!(b.text().await.len(), 146);
    b.send_text(&hundred).await; // 146 counted so far, not over 200: delivered (292 now)
    assert_eq!(a.text().await.len(), 146);
    a.send_text("y").await;
    let want = (Some(4413), "channel data limit reached".to_owned());
    assert_eq!(b.closed().await, want);
    assert_eq!(a.closed().await, want);
    // One envelope over the cap ends a fresh channel at once.
    let (mut c, id) = create(h.addr, &[]).await;
    let mut d = join(h.addr, &id, &[]).await;
    c.send_text(&"z".repeat(155)).await;
    assert_eq!(d.closed().await, want);
    assert_eq!(c.closed().await, want);
    statsd.expect(&["channelserver.conn.max.data:1|c"]).await;
    h.shutdown().await;
}

#[tokio::test]
async fn client_timeout_closes_a_silent_client_with_1008() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| {
        p.client_timeout = 2;
        p.heartbeat_interval = 1;
        p.statsd_host = host;
    })
    .await;
    let (mut peer, id) = create(h.addr, &[]).await;
    let mut silent = RawWs::connect(h.addr, &format!("/v1/ws/{id}")).await;
    let started = Instant::now();
    let first = silent.read_frame().await.expect("hello frame");
    assert_eq!(first.opcode, 1);
    let mut pings = 0;
    let close = loop {
        let f = silent
            .read_frame()
            .await
            .expect("a Close frame, not a drop");
        match f.opcode {
            9 => pings += 1,
            8 => break f,
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(close.close_code(), Some(1008));
    assert_eq!(&close.payload[2..], b"keepalive timeout");
    assert!(pings >= 1, "pinged before giving up");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    // The peer answers pings (the client library does) and stays.
    peer.send_text("still here").await;
    statsd.expect(&["channelserver.conn.expired:1|c"]).await;
    h.shutdown().await;
}

#[tokio::test]
async fn difference_binary_frames_count_as_signs_of_life() {
    let h = server(|p| {
        p.client_timeout = 2;
        p.heartbeat_interval = 1;
    })
    .await;
    let (mut a, id) = create(h.addr, &[]).await;
    // A raw client never answers pings; it only sends binary frames, for longer than the timeout.
    let mut raw = RawWs::connect(h.addr, &format!("/v1/ws/{id}")).await;
    for _ in 0..6 {
        raw.send_frame(2, b"\x01\x02").await;
        // Paces the sender; meanwhile A (a normal client) answers the server's pings.
        a.expect_silence(500).await;
    }
    raw.send_frame(1, b"alive").await;
    assert_eq!(
        envelope(&a.text().await)["message"],
        "alive",
        "still a member after 3 s"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_conn_lifespan_counts_from_channel_creation() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| {
        p.conn_lifespan = 2;
        p.heartbeat_interval = 1;
        p.statsd_host = host;
    })
    .await;
    let started = Instant::now();
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    // Activity does not extend the lifespan (the original compared it with the idle clock).
    a.send_text("busy").await;
    assert_eq!(envelope(&b.text().await)["message"], "busy");
    let want = (Some(4408), "channel lifespan expired".to_owned());
    assert_eq!(a.closed().await, want);
    assert_eq!(b.closed().await, want);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    statsd.expect(&["channelserver.conn.timeout:1|c"]).await;
    h.shutdown().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_sender_with_1009() {
    let h = server(|_| {}).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let max = "x".repeat(65536);
    a.send_text(&max).await;
    assert_eq!(
        envelope(&b.text().await)["message"].as_str().map(str::len),
        Some(65536)
    );
    a.send_text(&format!("{max}y")).await;
    assert_eq!(a.closed().await.0, Some(1009));
    h.eventually("the 1009 is counted", |_| {
        prometheus().lines().any(|l| {
            l.starts_with("switchboard_ws_disconnects_total{")
                && l.contains(r#"service="pairing""#)
                && l.contains(r#"reason="too_big""#)
        })
    })
    .await;
    b.expect_silence(50).await;
    let mut c = join(h.addr, &id, &[]).await;
    b.send_text("after").await;
    assert_eq!(envelope(&c.text().await)["message"], "after");
    h.shutdown().await;
}

#[tokio::test]
async fn server_shutdown_closes_members_with_1001() {
    let h = server(|_| {}).await;
    let (mut a, _) = create(h.addr, &[]).await;
    let stopping = tokio::spawn(h.shutdown());
    assert_eq!(a.closed().await.0, Some(1001));
    stopping.await.expect("shutdown");
}

// ---- Client addresses, GeoIP, languages ------------------------------------------------

#[tokio::test]
async fn geoip_sender_data_through_a_trusted_proxy_localized_by_the_sender() {
    let mmdb = test_mmdb();
    let h = server(|p| {
        p.mmdb_loc = mmdb;
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let ua = ("User-Agent", "Python/3.11 websockets/17.4");
    let (mut a, id) = create(h.addr, &[]).await;
    let mut fr = join(
        h.addr,
        &id,
        &[
            xff("10.1.1.1, 81.2.69.142, 192.168.1.1"),
            ("Accept-Language", "fr"),
            ua,
        ],
    )
    .await;
    fr.send_text("eA").await;
    assert_eq!(
        a.text().await,
        r#"{"message":"eA","sender":{"city":"Londres","country":"Royaume-Uni","region":"Angleterre","remote":"81.2.69.142","ua":"Python/3.11 websockets/17.4"}}"#
    );
    a.send_text("from a").await;
    // A is a direct client of the trusted proxy address with no X-Forwarded-For: no remote, as in the original.
    assert_eq!(envelope(&fr.text().await)["sender"], json!({}));
    let (mut c, id) = create(h.addr, &[]).await;
    let mut en = join(h.addr, &id, &[xff("81.2.69.142")]).await;
    en.send_text("eB").await;
    assert_eq!(
        envelope(&c.text().await)["sender"],
        json!({"city": "London", "country": "United Kingdom", "region": "England", "remote": "81.2.69.142"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_ipv6_addresses_get_geoip() {
    let mmdb = test_mmdb();
    let h = server(|p| {
        p.mmdb_loc = mmdb;
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[xff("2001:480:10::1")]).await;
    b.send_text("v6").await;
    assert_eq!(
        envelope(&a.text().await)["sender"],
        json!({"city": "San Diego", "country": "United States", "region": "California", "remote": "2001:480:10::1"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn difference_accept_language_honours_q_values_and_real_codes() {
    let mmdb = test_mmdb();
    let h = server(|p| {
        p.mmdb_loc = mmdb;
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // (Accept-Language, city of 81.2.69.142). The original gave French for `en-US,fr`
    // and English for `de`/`ja`.
    let cases = [
        ("en-US,fr", "London"),
        ("fr;q=0.5, ru", "Лондон"),
        ("ja", "ロンドン"),
        ("es", "Londres"),
    ];
    for (lang, city) in cases {
        let (mut a, id) = create(h.addr, &[]).await;
        let mut b = join(
            h.addr,
            &id,
            &[xff("81.2.69.142"), ("Accept-Language", lang)],
        )
        .await;
        b.send_text("x").await;
        assert_eq!(envelope(&a.text().await)["sender"]["city"], city, "{lang}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn garbage_accept_language_falls_back_to_the_default_language() {
    let mmdb = test_mmdb();
    let h = server(|p| {
        p.mmdb_loc = mmdb;
        p.trusted_proxies = vec!["127.0.0.1".into()];
        p.default_lang = "fr".into();
    })
    .await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(
        h.addr,
        &id,
        &[xff("81.2.69.142"), ("Accept-Language", ";;;,q=abc,=,-")],
    )
    .await;
    b.send_text("x").await;
    assert_eq!(envelope(&a.text().await)["sender"]["city"], "Londres");
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.bad_accept_language"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_forwarding_headers_count_only_from_trusted_proxies() {
    let mmdb = test_mmdb();
    // Loopback is not trusted by default (only the private ranges are).
    let h = server(|p| p.mmdb_loc = mmdb).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(
        h.addr,
        &id,
        &[
            xff("81.2.69.142"),
            ("X-Client-Geo-Location", "Bavaria,Munich"),
        ],
    )
    .await;
    b.send_text("x").await;
    assert_eq!(
        envelope(&a.text().await)["sender"],
        json!({"remote": "127.0.0.1"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_gcp_location_header_fills_a_missing_city_from_a_trusted_proxy() {
    let mmdb = test_mmdb();
    let h = server(|p| {
        p.mmdb_loc = mmdb;
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(
        h.addr,
        &id,
        &[
            xff("214.78.124.1"),
            ("X-Client-Geo-Location", "Bavaria,Munich"),
        ],
    )
    .await;
    b.send_text("x").await;
    assert_eq!(
        envelope(&a.text().await)["sender"],
        json!({"city": "Munich", "country": "United States", "region": "Bavaria", "remote": "214.78.124.1"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_trusted_proxy_without_a_client_address_leaves_remote_out() {
    let h = server(|p| p.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[xff("10.0.0.1, 192.168.0.1"), PROBE_UA]).await;
    b.send_text("x").await;
    assert_eq!(
        envelope(&a.text().await)["sender"],
        json!({"ua": "cs-probe/1.0"})
    );
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.remote_unknown"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_garbage_forwarded_for_from_a_trusted_proxy_is_refused_with_4400() {
    let h = server(|p| p.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    let (code, reason) = refused(h.addr, "/v1/ws/", &[xff("garbage")]).await;
    assert_eq!(
        (code, reason.as_str()),
        (Some(4400), "invalid X-Forwarded-For")
    );
    let (code, _) = refused(h.addr, &format!("/v1/ws/{id}"), &[xff("81.2.69.142, nope")]).await;
    assert_eq!(code, Some(4400));
    assert_eq!(
        h.app.pairing.as_ref().expect("pairing").channel_count(),
        1,
        "nothing created"
    );
    a.send_text("unharmed").await;
    assert_eq!(envelope(&b.text().await)["message"], "unharmed");
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.bad_forwarded_for"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn difference_a_missing_geoip_database_means_no_geo_fields() {
    let h = server(|p| {
        p.mmdb_loc = "/nonexistent/GeoLite2-City.mmdb".into();
        p.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    assert!(!h.app.pairing.as_ref().expect("pairing").has_geo());
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[xff("81.2.69.142")]).await;
    b.send_text("x").await;
    assert_eq!(
        envelope(&a.text().await)["sender"],
        json!({"remote": "81.2.69.142"})
    );
    h.shutdown().await;
}

// ---- Operations ------------------------------------------------------------------------

#[tokio::test]
async fn statsd_gets_the_originals_names_and_a_real_connection_length() {
    let statsd = Statsd::new().await;
    let host = statsd.host();
    let h = server(|p| {
        p.statsd_host = host;
        p.metric_name = "channelserver".into();
    })
    .await;
    refused(h.addr, "/v1/ws/AAAAAAAAAAAAAAAAAAAAAA", &[]).await;
    let (mut a, id) = create(h.addr, &[]).await;
    let mut b = join(h.addr, &id, &[]).await;
    b.close(1000, "").await;
    let _ = b.next().await;
    a.close(1000, "").await;
    let _ = a.next().await;
    // Both lengths come last, so everything before them has arrived too.
    let length = "channelserver.conn.length:";
    let got = statsd
        .expect(&["channelserver.conn.request:1|c|#new", length, length])
        .await;
    let count = |line: &str| got.iter().filter(|l| *l == line).count();
    assert_eq!(
        count("channelserver.conn.request:1|c|#existing"),
        2,
        "{got:?}"
    );
    assert_eq!(
        count("channelserver.conn.create:1|c"),
        2,
        "a refused join is not a conn.create: {got:?}"
    );
    for l in got.iter().filter(|l| l.starts_with(length)) {
        let ms: u64 = l[length.len()..]
            .strip_suffix("|ms")
            .expect("a timer")
            .parse()
            .expect("ms");
        assert!(ms < 10_000, "{l}");
    }
    assert!(counted(r#"switchboard_pairing_requests_total{kind="new"}"#));
    assert!(counted(
        r#"switchboard_pairing_events_total{event="conn.create"}"#
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn dockerflow_endpoints_answer_get_only() {
    let h = server(|p| p.dockerflow = true).await;
    let r = http::get(h.addr, "/__heartbeat__").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["status"], "ok");
    assert!(v["version"].is_string());
    let r = http::get(h.addr, "/__lbheartbeat__").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = http::get(h.addr, "/__version__").await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    for key in ["build", "commit", "source", "version"] {
        assert!(v[key].is_string(), "{key} in {v}");
    }
    for path in ["/__heartbeat__", "/__lbheartbeat__", "/__version__"] {
        for method in ["HEAD", "POST"] {
            assert_eq!(
                http::request(h.addr, method, path, &[], b"").await.status,
                405,
                "{method} {path}"
            );
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn dockerflow_is_off_natively_by_default() {
    let h = start(harness::config(|c| c.console.enabled = false)).await;
    assert_eq!(http::get(h.addr, "/__heartbeat__").await.status, 404);
    h.shutdown().await;
}
