//! The meetingserver persona as a real process against pgeu-system's tables
//! on PostgreSQL: the original's flags (Go syntax), a lib/pq URL, a unix
//! socket listener, `-behindproxy`, `/__meetingstatus`, CPU profiles on
//! `-profilelisten`, keys kept out of the logs, and `-origin` required.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::pgeu::PgeuDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::meetings_common::Meet;
use crate::support::{ServerProcess, TempDir, run_with_timeout, server_binary};

/// One HTTP/1.1 GET over a unix socket; returns the status and the body.
async fn unix_get(socket: &Path, path: &str, headers: &str) -> (u16, Vec<u8>) {
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, body)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 4 + n..];
    }
    out
}

#[test]
fn a_missing_origin_prints_the_originals_message_and_exits_0() {
    let out = run_with_timeout(
        std::process::Command::new(server_binary()).args(["meetingserver"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(0));
    assert!(
        out.stderr_tail(20)
            .contains("Must specify a value for origin veritication")
    );
    assert!(out.stderr_tail(20).contains("-profilelisten"));
}

#[tokio::test]
async fn the_persona_serves_pgeu_systems_meetings_with_the_originals_flags() {
    let Some(db) = PgeuDb::create().await else {
        return;
    };
    let meeting = db.meeting("AGM", 0).await;
    let alice = db.member("Alice").await;
    let key = format!("S{}", "s".repeat(53));
    db.key(meeting, alice, &key, Some("Paul Proxy")).await;
    let dir = TempDir::new("meetingserver");
    let profile_sock = dir.path().join("profile.sock");
    let server = ServerProcess::start([
        "meetingserver",
        "-origin=https://www.example.org",
        "--dburl",
        db.url(),
        "-listen",
        "127.0.0.1:0",
        "-behindproxy",
        &format!("-profilelisten={}", profile_sock.display()),
    ]);
    let path = format!("/ws/meeting/{meeting}/{key}/0");
    // Origin: exact.
    let refused = switchboard_testkit::ws::try_connect(
        server.addr(),
        &path,
        &[("Origin", "https://www.example.org/")],
    )
    .await;
    assert!(refused.is_err(), "a trailing slash does not match");
    let c = switchboard_testkit::ws::try_connect(
        server.addr(),
        &path,
        &[
            ("Origin", "https://www.example.org"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
    )
    .await
    .expect("the exact origin is allowed");
    let mut a = Meet(c);
    let j = a.joined("Alice").await;
    assert_eq!(
        j.line["message"],
        "Member Alice joined the meeting (through proxy Paul Proxy)"
    );
    // A wrong key, for the log check below.
    let mut wrong = Meet::connect(
        server.addr(),
        &format!("/ws/meeting/{meeting}/{}/0", "W".repeat(54)),
    )
    .await;
    wrong.dropped().await;

    let r = switchboard_testkit::http::get(server.addr(), "/__meetingstatus").await;
    let status: Value = serde_json::from_str(&r.text()).expect("JSON");
    let member = &status["meetings"][0]["members"][0];
    assert_eq!(member["name"], "Alice");
    let remote = member["remote"].as_str().unwrap();
    assert!(remote.starts_with("203.0.113.7 (127.0.0.1:"), "{remote}");
    assert_eq!(status["meetings"][0]["disconnectedmembers"], Value::Null);

    // CPU profiles, pprof format, on the -profilelisten unix socket.
    let (code, body) = unix_get(&profile_sock, "/debug/pprof/profile?seconds=1", "").await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!body.is_empty());
    let (code, _) = unix_get(&profile_sock, "/debug/pprof/profile?seconds=0", "").await;
    assert_eq!(code, 400);

    // Keys never reach the logs.
    let logs = server.output(500);
    assert!(!logs.contains(&key), "a member key is in the logs");
    assert!(
        !logs.contains(&"W".repeat(54)),
        "a wrong key is in the logs"
    );
}

#[tokio::test]
async fn a_unix_socket_listener_serves_the_status_and_sigterm_exits_0() {
    let Some(db) = PgeuDb::create().await else {
        return;
    };
    let dir = TempDir::new("meetingserver-unix");
    let sock = dir.path().join("meetingserver.sock");
    // A stale socket file from a killed process must not stop the start.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("stale socket"));
    let mut child = std::process::Command::new(server_binary())
        .args([
            "meetingserver".to_owned(),
            "-origin".to_owned(),
            "*".to_owned(),
            format!("-dburl={}", db.url()),
            format!("-listen={}", sock.display()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    let banner = lines.next().expect("a banner line").expect("readable");
    assert!(banner.contains("listening on unix:"), "{banner}");
    let (code, body) = unix_get(&sock, "/__meetingstatus", "").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["meetings"], serde_json::json!([]));
    let (code, _) = unix_get(&sock, "/ws/meeting/1/short/0", "").await;
    assert_eq!(code, 404);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket file removed on exit");
}
