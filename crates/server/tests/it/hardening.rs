//! Hardening (issue 12): bad handshakes, oversized fragmented messages, idle
//! and stalled HTTP connections, the connection caps and slow consumers. Each
//! case ends with a clear status or close code and is counted.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use switchboard_testkit::raw::RawWs;
use switchboard_testkit::{WAIT, http};

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

/// A TCP connection to `addr`, from source address `from` when given.
async fn tcp(addr: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .expect("bind a loopback source");
    }
    timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the server closes the connection (or resets it); returns what
/// arrived. Fails if that takes longer than `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    timeout(within, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection in time");
    got
}

/// Reads one response head (and a body of `Content-Length`, if any); the
/// connection stays open. Returns the head.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().expect("length"));
            break (p + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("the body in time")
            .expect("read");
        assert!(n > 0, "closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf[..head_end]).into_owned()
}

fn timeouts_total(phase: &str) -> u64 {
    counter(
        &metrics(),
        "switchboard_http_timeouts_total",
        &[("phase", phase)],
    )
}

/// A client that sends half a request head, on the main and on the ops
/// listener, is closed after `server.header_timeout_secs`; so is one that
/// sends nothing at all.
#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let h = start(config(|c| {
        c.server.header_timeout_secs = 1;
        c.ops.enabled = true;
        c.ops.listen = "127.0.0.1:0".into();
    }))
    .await;
    let before = timeouts_total("header");
    for addr in [h.addr, h.ops.expect("ops listener")] {
        let started = Instant::now();
        let mut half = tcp(addr, None).await;
        half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let mut silent = tcp(addr, None).await;
        assert!(
            read_until_closed(&mut half, Duration::from_secs(5))
                .await
                .is_empty()
        );
        assert!(
            read_until_closed(&mut silent, Duration::from_secs(5))
                .await
                .is_empty()
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "not before the timeout"
        );
    }
    assert!(timeouts_total("header") >= before + 4);
    // A prompt client is served as before.
    assert_eq!(http::get(h.ops.unwrap(), "/healthz").await.status, 200);
    h.shutdown().await;
}

/// A kept-alive connection that sends nothing after its answer is closed
/// after `server.idle_timeout_secs` (which is not the header timeout), on
/// the ops listener too.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let h = start(config(|c| {
        c.server.header_timeout_secs = 30;
        c.server.idle_timeout_secs = 1;
        c.ops.enabled = true;
        c.ops.listen = "127.0.0.1:0".into();
    }))
    .await;
    let before = timeouts_total("idle");
    for (addr, path) in [(h.addr, "/pubsub/idle"), (h.ops.unwrap(), "/healthz")] {
        let mut s = tcp(addr, None).await;
        for _ in 0..2 {
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        }
        let answered = Instant::now();
        assert!(
            read_until_closed(&mut s, Duration::from_secs(10))
                .await
                .is_empty()
        );
        let idle = answered.elapsed();
        assert!(
            idle >= Duration::from_millis(900) && idle < Duration::from_secs(10),
            "{idle:?}"
        );
    }
    assert!(timeouts_total("idle") >= before + 2);
    h.shutdown().await;
}

/// A POST whose body stops coming is ended after `server.body_timeout_secs`.
#[tokio::test]
async fn a_stalled_request_body_is_ended_after_the_body_timeout() {
    let h = start(config(|c| {
        c.server.body_timeout_secs = 1;
        c.ops.enabled = true;
        c.ops.listen = "127.0.0.1:0".into();
    }))
    .await;
    let before = timeouts_total("body");
    let mut s = tcp(h.addr, None).await;
    s.write_all(b"POST /pubsub/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(timeouts_total("body") > before);
    h.shutdown().await;
}

fn refused(reason: &str) -> u64 {
    counter(
        &metrics(),
        "switchboard_connections_refused_total",
        &[("reason", reason)],
    )
}

/// Sends a WebSocket upgrade for `path` with `headers` and reads the answer's
/// head; the connection stays open (a 101 holds its place).
async fn upgrade(
    addr: SocketAddr,
    from: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, TcpStream) {
    let mut s = tcp(addr, from).await;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    for (k, v) in upgrade_headers("dGhlIHNhbXBsZSBub25jZQ==")
        .iter()
        .chain(headers)
    {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_response(&mut s).await;
    (head, s)
}

/// Polls `cond` until it holds (bounded), for state with no event to await.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Over `server.max_connections` a new connection gets 503 with
/// `Retry-After: 1` and is closed, counted; the ops listener keeps working;
/// a place frees when a connection (here a WebSocket) ends.
#[tokio::test]
async fn over_the_connection_cap_a_client_gets_503_and_ops_keeps_working() {
    let h = start(config(|c| {
        c.server.max_connections = 2;
        c.ops.enabled = true;
        c.ops.listen = "127.0.0.1:0".into();
    }))
    .await;
    let ops = h.ops.unwrap();
    let before = refused("cap");
    let (a, first) = upgrade(h.addr, None, "/pubsub/cap", &[]).await;
    let (b, _second) = upgrade(h.addr, None, "/pubsub/cap", &[]).await;
    assert!(a.starts_with("HTTP/1.1 101") && b.starts_with("HTTP/1.1 101"));
    let mut third = tcp(h.addr, None).await;
    third
        .write_all(b"GET /pubsub/cap HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut third, WAIT).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
    assert!(refused("cap") > before);
    assert_eq!(
        http::get(ops, "/healthz").await.status,
        200,
        "ops is not capped by the main listener"
    );
    drop(first);
    until("a place to free up", || async {
        http::get(h.addr, "/pubsub/cap").await.status == 200
    })
    .await;
    h.shutdown().await;
}

/// `server.max_connections_per_ip`: a direct client over it gets 503 at once;
/// behind a trusted proxy the forwarded address counts (so other clients of
/// the same proxy still get in). Other addresses are not affected.
#[tokio::test]
async fn per_address_connection_limit_counts_direct_and_forwarded_clients() {
    let proxy: IpAddr = "127.0.0.3".parse().unwrap();
    let h = start(config(|c| {
        c.server.max_connections_per_ip = 2;
        c.server.trusted_proxies = vec![proxy.to_string()];
    }))
    .await;
    let before = refused("per_ip");
    let direct: IpAddr = "127.0.0.2".parse().unwrap();
    let (_a, _ka) = upgrade(h.addr, Some(direct), "/pubsub/ip", &[]).await;
    let (_b, _kb) = upgrade(h.addr, Some(direct), "/pubsub/ip", &[]).await;
    let mut over = tcp(h.addr, Some(direct)).await;
    let answer = read_until_closed(&mut over, WAIT).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("Retry-After: 1"),
        "{answer}"
    );
    // Another address is not affected.
    let (other, _ko) = upgrade(h.addr, None, "/pubsub/ip", &[]).await;
    assert!(other.starts_with("HTTP/1.1 101"), "{other}");
    // Behind the proxy: per forwarded address.
    let client = [("X-Forwarded-For", "198.51.100.7")];
    let (c1, _k1) = upgrade(h.addr, Some(proxy), "/pubsub/ip", &client).await;
    let (c2, _k2) = upgrade(h.addr, Some(proxy), "/pubsub/ip", &client).await;
    let (c3, _k3) = upgrade(h.addr, Some(proxy), "/pubsub/ip", &client).await;
    assert!(c1.starts_with("HTTP/1.1 101") && c2.starts_with("HTTP/1.1 101"));
    assert!(
        c3.starts_with("HTTP/1.1 503") && c3.contains("retry-after: 1"),
        "{c3}"
    );
    let (d, _kd) = upgrade(
        h.addr,
        Some(proxy),
        "/pubsub/ip",
        &[("X-Forwarded-For", "198.51.100.8")],
    )
    .await;
    assert!(d.starts_with("HTTP/1.1 101"), "{d}");
    assert!(refused("per_ip") >= before + 2);
    h.shutdown().await;
}

/// `server.max_upgrades_per_ip_per_sec`: upgrades over the rate get 429 with
/// `Retry-After`, counted; plain requests are not limited.
#[tokio::test]
async fn per_address_upgrade_rate_answers_429() {
    let h = start(config(|c| c.server.max_upgrades_per_ip_per_sec = 2)).await;
    let before = refused("upgrade_rate");
    let from: IpAddr = "127.0.0.4".parse().unwrap();
    let mut heads = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..6 {
        let (head, s) = upgrade(h.addr, Some(from), "/pubsub/rate", &[]).await;
        heads.push(head);
        keep.push(s);
    }
    let limited: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("HTTP/1.1 429"))
        .collect();
    assert!(!limited.is_empty(), "{heads:?}");
    assert!(
        limited
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("retry-after: 1"))
    );
    assert!(heads[0].starts_with("HTTP/1.1 101"));
    assert!(refused("upgrade_rate") > before);
    // A plain GET from the same address is not an upgrade.
    let mut s = tcp(h.addr, Some(from)).await;
    s.write_all(b"GET /pubsub/rate HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    h.shutdown().await;
}

fn slow_consumers(service: &str, cause: &str) -> u64 {
    counter(
        &metrics(),
        "switchboard_slow_consumers_total",
        &[("service", service), ("cause", cause)],
    )
}

/// A subscriber that stops reading while its outbox still has room: the
/// write to its socket stalls past `pubsub.write_timeout_secs`, and it ends
/// as a slow consumer like an outbox overflow does (one policy, one counter),
/// with close 1013 if the socket still takes it; others are unharmed.
#[tokio::test]
async fn a_stalled_write_ends_the_client_as_a_slow_consumer() {
    let h = start(config(|c| {
        c.pubsub.outbox_messages = 1_000_000;
        c.pubsub.outbox_bytes = 1 << 30;
        c.pubsub.write_timeout_secs = 1;
    }))
    .await;
    let before = slow_consumers("pubsub", "write_stalled");
    let disconnects = || {
        counter(
            &metrics(),
            "switchboard_ws_disconnects_total",
            &[("service", "pubsub"), ("reason", "slow_consumer")],
        )
    };
    let disconnects_before = disconnects();
    let mut slow = RawWs::connect_with(h.addr, "/pubsub/stall", &[], Some(4096)).await;
    let mut healthy = switchboard_testkit::ws::connect(h.addr, "/pubsub/stall").await;
    let payload = "z".repeat(60_000);
    let mut sent = 0;
    while slow_consumers("pubsub", "write_stalled") == before {
        assert!(sent < 5000, "the stalled subscriber was never ended");
        assert_eq!(
            http::post(h.addr, "/pubsub/stall", payload.as_bytes())
                .await
                .status,
            200
        );
        assert_eq!(healthy.text().await.len(), payload.len());
        sent += 1;
    }
    // The stalled client, reading again, finds its data and then the end: a
    // Close 1013 if it went out, else the dropped connection (never hangs).
    if let Some(close) = slow.until_close().await {
        assert_eq!(close.close_code(), Some(1013));
    }
    until("the end counted under the overflow's label", || async {
        disconnects() > disconnects_before
    })
    .await;
    // The healthy subscriber is still served.
    assert_eq!(
        http::post(h.addr, "/pubsub/stall", b"after").await.status,
        200
    );
    assert_eq!(healthy.text().await, "after");
    h.shutdown().await;
}

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// At start the soft open-file limit is raised to the hard one (both
/// logged, once), and the default connection cap is that minus the reserve.
/// The server is started from a shell that lowered its soft limit first.
#[test]
fn the_open_file_limit_is_raised_and_the_cap_derived_from_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = crate::support::TempDir::new("fdlimit");
    let config = dir.write(
        "c.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nenabled = false\n[store]\nurl = \"sqlite::memory:\"\n",
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 512 && exec \"$0\" serve --config \"$1\"")
        .arg(crate::support::server_binary())
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server through sh");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !lines
        .iter()
        .any(|l: &String| l.contains("connection limits"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("no limits logged in time:\n{}", lines.join("\n"));
            }
        }
    }
    let pid = child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    let raised: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("open-file limit"))
        .collect();
    assert_eq!(raised.len(), 1, "logged once:\n{all}");
    let (was, soft, hard) = (
        field(raised[0], "was"),
        field(raised[0], "soft"),
        field(raised[0], "hard"),
    );
    assert_eq!(was, 512, "{all}");
    assert_eq!(soft, hard, "{all}");
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a row for open files");
    let nums: Vec<&str> = row.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        nums[0], nums[1],
        "soft = hard in the running process: {row}"
    );
    let caps = lines
        .iter()
        .find(|l| l.contains("connection limits"))
        .unwrap();
    assert_eq!(
        field(caps, "max_connections"),
        soft.min(1 << 20) - switchboard::fdlimit::RESERVE
    );
}

/// With the per-address limits on, the bench still works: it spreads its
/// clients over 127.0.0.x (`--sources`), so 64 subscribers over 16 sources
/// stay under 10 connections and 10 upgrades a second per address.
#[tokio::test]
async fn the_bench_works_with_per_address_limits_on() {
    use clap::Parser as _;
    use switchboard_bench::cli::{Cli, Scenario};
    use switchboard_bench::report::Summary as _;
    use switchboard_bench::scenario::{Ctx, fanout};

    let h = start(config(|c| {
        c.server.max_connections_per_ip = 10;
        c.server.max_upgrades_per_ip_per_sec = 10;
    }))
    .await;
    let url = format!("ws://{}/pubsub/bench-limits", h.addr);
    let args = [
        "switchboard-bench",
        "fanout",
        "--url",
        &url,
        "--sources",
        "16",
        "--subscribers",
        "64",
        "--messages",
        "20",
    ];
    let c = Cli::try_parse_from(args).expect("bench arguments");
    let Scenario::Fanout(args) = c.scenario else {
        panic!("not the fanout scenario");
    };
    let ctx = Ctx::new(c.common).await.expect("bench context");
    let s = fanout::run(&ctx, &args).await.expect("the run completes");
    assert!(s.failures().is_empty(), "{:?}", s.failures());
    assert_eq!(s.subscribers_connected, 64);
    assert_eq!(s.deliveries, 64 * 20);
    h.shutdown().await;
}
