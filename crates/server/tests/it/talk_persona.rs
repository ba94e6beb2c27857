//! The `signaling` persona: the original's server.conf, paths at the root.

use serde_json::{Value, json};
use switchboard_testkit::process::{ServerProcess, TempDir};
use switchboard_testkit::{http, ws};

use crate::talk_common::{Nextcloud, SECRET};

#[tokio::test]
async fn the_persona_serves_the_originals_paths_from_its_server_conf() {
    let mut nc = Nextcloud::start().await;
    let dir = TempDir::new("talk-persona");
    let conf = dir.write(
        "server.conf",
        &format!(
            "[http]\nlisten = 127.0.0.1:0\n\
             [sessions]\nhashkey = 0123456789abcdef0123456789abcdef\n\
             [backend]\nbackends = nc\ntimeout = 10\n\
             [nc]\nurl = http://{}\nsecret = $(TEST_TALK_SECRET)\n\
             [nats]\nurl = :loopback:\n[mcu]\ntype = janus\n",
            nc.addr
        ),
    );
    let server = ServerProcess::start_with_env(
        ["signaling", "--config", conf.to_str().unwrap()],
        &[("TEST_TALK_SECRET", SECRET)],
        1,
    );
    let welcome = http::get(server.addr(), "/api/v1/welcome").await;
    assert_eq!(welcome.status, 200);
    assert!(welcome.header("x-spreed-signaling-features").is_some());

    let mut c = ws::connect(server.addr(), "/spreed").await;
    let first: Value = serde_json::from_str(&c.text().await).unwrap();
    assert_eq!(first["type"], "welcome");
    c.send_text(
        &json!({"id": "1", "type": "hello", "hello": {"version": "1.0",
            "auth": {"url": nc.auth_url(), "params": {"userid": "alice", "ticket": "ticket-alice"}}}})
        .to_string(),
    )
    .await;
    let hello: Value = serde_json::from_str(&c.text().await).unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["hello"]["userid"], "alice");
    assert_eq!(nc.request().await["type"], "auth");
    // Only the talk service runs: no console at the root.
    assert_eq!(http::get(server.addr(), "/").await.status, 404);
}

#[tokio::test]
async fn a_bad_server_conf_fails_naming_section_and_key() {
    let dir = TempDir::new("talk-persona-bad");
    let conf = dir.write(
        "server.conf",
        "[http]\nlisten = 127.0.0.1:0\n[backend]\nallowall = perhaps\n",
    );
    let out = switchboard_testkit::process::run_with_timeout(
        std::process::Command::new(switchboard_testkit::process::switchboard_binary())
            .args(["signaling", "--config"])
            .arg(&conf),
        std::time::Duration::from_secs(20),
    );
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        out.stderr_tail(20)
    );
    let tail = out.stderr_tail(20);
    assert!(tail.contains("[backend] allowall"), "{tail}");
}
