//! The real pairing client against Switchboard: `tests/node/pairing-e2e.js` drives
//! two `fxa-pairing-channel@1.0.2` channel objects (the npm package FxA uses)
//! through a full pairing — TLS 1.3 with the pre-shared key, application messages
//! both ways with sender metadata, a clean close on both sides — against an
//! in-process server with the default (channelserver) limits.
//!
//! Needs `node` (≥ 20) and the npm packages of `tests/node` (`npm ci` there, which
//! `scripts/node-deps.sh` runs). When `node_modules` is missing and `npm` is on the
//! PATH, the test runs `npm ci` itself. A missing dependency is a loud skip on a
//! dev machine and a failure under `CI=true`.

use crate::harness;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

/// `tests/node`, or `None` (after reporting) when its packages cannot be made available.
fn node_packages() -> Option<PathBuf> {
    let dir = support::workspace_root().join("tests/node");
    let installed = |d: &Path| {
        d.join("node_modules/fxa-pairing-channel/dist/FxAccountsPairingChannel.babel.umd.js")
            .is_file()
    };
    if installed(&dir) {
        return Some(dir);
    }
    let install = "bash scripts/node-deps.sh (or: cd tests/node && npm ci)";
    let Some(npm) = support::find_command("npm") else {
        support::missing_dependency(
            "the npm packages of tests/node (fxa-pairing-channel)",
            "tests/node/node_modules is missing and npm is not on PATH",
            install,
        );
        return None;
    };
    let out = support::run_with_timeout(
        Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--no-progress"])
            .current_dir(&dir),
        Duration::from_secs(600),
    );
    if out.status.is_some_and(|s| s.success()) && installed(&dir) {
        return Some(dir);
    }
    support::missing_dependency(
        "the npm packages of tests/node (fxa-pairing-channel)",
        &format!("`npm ci` in tests/node failed:\n{}", out.stderr_tail(20)),
        install,
    );
    None
}

/// Node's major version, from `node --version` (`v20.20.2` → 20).
fn node_major(node: &Path) -> Option<u32> {
    let out = Command::new(node).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fxa_pairing_channel_pairs_through_switchboard() {
    let Some(node) = support::require_command("node", "apt-get install nodejs npm (Node >= 20)")
    else {
        return;
    };
    let Some(dir) = node_packages() else {
        return;
    };
    let h = harness::start(harness::config(|_| {})).await;
    let base = format!("ws://{}/", h.addr);

    let mut cmd = Command::new(&node);
    // Node 20 and 21 have the WebSocket global only behind this flag.
    if node_major(&node).is_some_and(|v| v < 22) {
        cmd.arg("--experimental-websocket");
    }
    cmd.arg(dir.join("pairing-e2e.js"))
        .arg(&base)
        .current_dir(&dir);
    let out = tokio::task::spawn_blocking(move || {
        support::run_with_timeout(&mut cmd, Duration::from_secs(60))
    })
    .await
    .expect("node runner");

    let report = out
        .stdout
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or(Value::Null);
    assert!(
        !out.timed_out() && out.status.is_some_and(|s| s.success()) && report["ok"] == true,
        "pairing-e2e.js failed ({:?}, {:?}): {report}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.elapsed,
        out.stdout.join("\n"),
        out.stderr_tail(40),
    );
    // Node's WebSocket (undici) sends `User-Agent: node`; loopback has no geo.
    for side in ["creatorReceived", "joinerReceived"] {
        assert_eq!(
            report[side]["sender"],
            json!({"remote": "127.0.0.1", "ua": "node"}),
            "{side}: {report}"
        );
    }
    assert_eq!(
        report["creatorReceived"]["data"]["message"],
        "pair:supp:request"
    );
    assert_eq!(
        report["joinerReceived"]["data"]["message"],
        "pair:auth:metadata"
    );
    h.eventually("the channel is gone after both closed", |app| {
        app.pairing.as_ref().is_some_and(|p| p.channel_count() == 0)
    })
    .await;
    h.shutdown().await;
}
