//! `switchboard channelserver` as a process: the original's `PAIR_*` environment,
//! the service at the root, the Dockerflow endpoints, statsd, MozLog JSON on
//! stdout (no message content in it, even at debug level), and SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::ServerProcess;
use serde_json::{Value, json};
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Client};
use tokio::net::UdpSocket;

const SECRET: &str = "c2VjcmV0LXBheWxvYWQtbmV2ZXItbG9nZ2Vk";

fn test_mmdb() -> String {
    let dir = std::env::var_os("SWITCHBOARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    dir.join("GeoIP2-City-Test.mmdb").display().to_string()
}

async fn hello(c: &mut Client) -> String {
    let v: Value = serde_json::from_str(&c.text().await).expect("hello JSON");
    v["channelid"].as_str().expect("channelid").to_owned()
}

async fn statsd_line(sock: &UdpSocket, want: &str) {
    let mut buf = [0u8; 2048];
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = sock.recv(&mut buf).await.expect("statsd recv");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.lines().any(|l| l == want) {
                return;
            }
            seen.push(text);
        }
    })
    .await;
    assert!(found.is_ok(), "statsd line {want:?} not seen; got {seen:?}");
}

#[tokio::test]
async fn the_channelserver_persona_reads_pair_variables_and_logs_mozlog() {
    let statsd = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let statsd_host = statsd.local_addr().expect("addr").to_string();
    let mmdb = test_mmdb();
    let mut server = ServerProcess::start_with_env(
        ["channelserver"],
        &[
            ("PAIR_HOSTNAME", "127.0.0.1"),
            ("PAIR_PORT", "0"),
            ("PAIR_MMDB_LOC", &mmdb),
            ("PAIR_TRUSTED_PROXY_LIST", "127.0.0.1"),
            ("PAIR_STATSD_HOST", &statsd_host),
            ("PAIR_METRIC_NAME", "pairtest"),
            ("PAIR_MAX_EXCHANGES", "3"),
            ("PAIR_DEBUG", "true"),
            ("RUN_MODE", "switchboard-test-no-such-file"),
            ("RUST_LOG", "debug"),
        ],
        1,
    );
    let addr = server.addr();

    // The service is at the root; the joiner's geo follows its own Accept-Language.
    let mut a = ws::connect(addr, "/v1/ws/").await;
    let id = hello(&mut a).await;
    let mut b = ws::try_connect(
        addr,
        &format!("/v1/ws/{id}"),
        &[
            ("X-Forwarded-For", "81.2.69.142"),
            ("Accept-Language", "fr"),
            ("User-Agent", "probe"),
        ],
    )
    .await
    .expect("join");
    assert_eq!(hello(&mut b).await, id);
    b.send_text(SECRET).await;
    let got: Value = serde_json::from_str(&a.text().await).expect("envelope");
    assert_eq!(
        got,
        json!({"message": SECRET, "sender": {"city": "Londres", "country": "Royaume-Uni", "region": "Angleterre", "remote": "81.2.69.142", "ua": "probe"}})
    );
    statsd_line(&statsd, "pairtest.conn.request:1|c|#new").await;

    // PAIR_MAX_EXCHANGES=3: the fourth message ends the channel.
    a.send_text("two").await;
    b.send_text("three").await;
    assert!(b.text().await.contains("two"));
    assert!(a.text().await.contains("three"));
    a.send_text("four").await;
    assert_eq!(a.closed().await.0, Some(4429));
    assert_eq!(b.closed().await.0, Some(4429));

    let r = http::get(addr, "/__heartbeat__").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).expect("json")["status"],
        "ok"
    );
    assert_eq!(http::get(addr, "/__lbheartbeat__").await.status, 200);

    assert!(
        server
            .wait_for_line("channel ended", Duration::from_secs(10))
            .is_some(),
        "the channel end is logged"
    );
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");

    let output = server.output(100_000);
    let stdout: Vec<&str> = output
        .lines()
        .filter(|l| !l.starts_with("[stderr] "))
        .collect();
    assert!(stdout.len() >= 5, "{output}");
    let version = env!("CARGO_PKG_VERSION");
    for line in &stdout {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["Logger"], format!("channelserver-{version}"), "{line}");
        assert_eq!(v["Type"], "channelserver:log", "{line}");
        assert!(
            v["Pid"].is_u64() && v["Severity"].is_u64() && v["Timestamp"].is_u64(),
            "{line}"
        );
        assert!(v["Fields"]["msg"].is_string(), "{line}");
    }
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("Starting server: listening on http://127.0.0.1:")),
        "{output}"
    );
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("\"Severity\":4") && l.contains("PAIR_DEBUG")),
        "the unused PAIR_DEBUG is warned about: {output}"
    );
    assert!(
        !output.contains(SECRET),
        "message contents reached the logs:\n{output}"
    );
    assert!(
        !output.contains("Londres"),
        "sender data reached the logs:\n{output}"
    );
    assert!(
        !output.contains("81.2.69.142"),
        "a client address reached the logs:\n{output}"
    );
}
