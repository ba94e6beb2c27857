//! The Pinghub persona as a real process: Pinghub's flags, channels at the root,
//! the metrics port on loopback, unix sockets, and SIGTERM handling.

use std::time::Duration;

use crate::support::{ServerProcess, TempDir, run_with_timeout, server_binary};
use switchboard_testkit::{http, ws};

#[tokio::test]
async fn serves_channels_at_the_root_with_go_style_flags() {
    let server = ServerProcess::start(["pinghub", "-addr=127.0.0.1:0", "--mport", "0"]);
    let mut sub = ws::connect(server.addr(), "/chan/a").await;
    let r = http::post(server.addr(), "/chan/a", b"hello from curl").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK\n"));
    assert_eq!(sub.text().await, "hello from curl");
    // GET / is the test page of channel "/", not a console: Pinghub's root is a channel.
    let root = http::get(server.addr(), "/").await;
    assert_eq!(root.status, 200);
    assert!(root.text().contains("new WebSocket"));
    assert!(!root.text().contains("Switchboard</h1>"));
}

#[tokio::test]
async fn origin_flag_pins_the_websocket_origin() {
    let server = ServerProcess::start([
        "pinghub",
        "-addr",
        "127.0.0.1:0",
        "-mport=0",
        "-origin=https://example.com",
    ]);
    assert!(
        ws::try_connect(server.addr(), "/x", &[("Origin", "https://example.com")])
            .await
            .is_ok()
    );
    assert!(
        ws::try_connect(server.addr(), "/x", &[("Origin", "https://example.net")])
            .await
            .is_err()
    );
}

#[test]
fn unknown_flags_fail_like_go() {
    let out = run_with_timeout(
        std::process::Command::new(server_binary()).args(["pinghub", "-bogus"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2));
    assert!(
        out.stderr_tail(20)
            .contains("flag provided but not defined: -bogus")
    );
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut server = ServerProcess::start(["pinghub", "-addr=127.0.0.1:0", "-mport=0"]);
    let mut a = ws::connect(server.addr(), "/t").await;
    let mut b = ws::connect(server.addr(), "/u").await;
    server.signal("TERM");
    for c in [&mut a, &mut b] {
        assert_eq!(c.closed().await.0, Some(1001));
    }
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn unix_socket_addr_and_log_file() {
    let dir = TempDir::new("pinghub-unix");
    let sock = dir.path().join("ph.sock");
    let log = dir.path().join("ph.log");
    // A stale socket file from a killed process must not stop the start.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("stale socket"));
    let mut child = std::process::Command::new(server_binary())
        .args([
            "pinghub".to_owned(),
            format!("-addr={}", sock.display()),
            "-mport=0".to_owned(),
            format!("-log={}", log.display()),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The banner line says the listener is up.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    let banner = lines.next().expect("a banner line").expect("readable");
    assert!(banner.contains("listening on unix:"), "{banner}");
    let mut s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect to the unix socket");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        .await
        .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.expect("read");
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("OK\n"),
        "{resp}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket file removed on exit");
    let logged = std::fs::read_to_string(&log).expect("log file written");
    assert!(logged.contains("SIGTERM"), "{logged}");
    assert!(!logged.contains("\"hi\""), "message bodies never logged");
}

#[tokio::test]
async fn mport_serves_prometheus_metrics_on_loopback() {
    let server = ServerProcess::start(["pinghub", "-addr=127.0.0.1:0", "-mport=0"]);
    let _ = http::post(server.addr(), "/nobody", b"x").await;
    let line = server
        .wait_for_line("ops on http://", Duration::from_secs(10))
        .expect("the banner names the ops listener");
    let ops = line
        .split_once("ops on http://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or("").to_owned())
        .expect("an address after the marker");
    let addr: std::net::SocketAddr = ops.parse().expect("an address");
    assert!(addr.ip().is_loopback(), "metrics bind to loopback");
    let m = http::get(addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.text().contains("switchboard_pubsub_drops_total 1"),
        "{}",
        m.text()
    );
    assert_eq!(http::get(addr, "/healthz").await.text(), "ok\n");
}
