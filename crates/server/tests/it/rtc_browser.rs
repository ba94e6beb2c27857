//! A real video call in a real browser: two Chromium pages (two browser
//! contexts, so two users) on the demo call page at `/rtc/call`, driven by
//! Playwright (`tests/node/rtc-call.js`). It passes when both peer
//! connections reach `connected` and both remote videos present decoded
//! frames, which needs the offer, the answer and the ICE candidates to have
//! been relayed correctly in both directions.
//!
//! Needs `node`, Debian's `chromium` (or `$SWITCHBOARD_CHROMIUM`) and
//! `tests/node/node_modules/playwright-core` (`bash scripts/node-deps.sh`):
//! skipped loudly when one is missing, a failure under `CI=true`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    ServerProcess, missing_dependency, require_command, run_with_timeout, workspace_root,
};

const INSTALL: &str =
    "bash scripts/node-deps.sh (installs chromium and the npm packages of tests/node)";

#[test]
fn two_browsers_make_a_video_call_through_the_rtc_service() {
    let Some(node) = require_command("node", "apt-get install -y nodejs npm") else {
        return;
    };
    let chromium =
        std::env::var("SWITCHBOARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if require_command(&chromium, INSTALL).is_none() {
        return;
    }
    let node_dir = workspace_root().join("tests/node");
    let playwright: PathBuf = node_dir.join("node_modules/playwright-core/package.json");
    if !playwright.is_file() {
        missing_dependency(
            "the npm package playwright-core",
            &format!("{} is missing", playwright.display()),
            INSTALL,
        );
        return;
    }

    let server = ServerProcess::serve_config(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nenabled = false\n[rtc]\nregister_per_minute = 0\n",
        1,
    );
    let out = run_with_timeout(
        Command::new(node)
            .arg(node_dir.join("rtc-call.js"))
            .arg(server.http_url(""))
            .env("SWITCHBOARD_CHROMIUM", &chromium)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .current_dir(&node_dir),
        Duration::from_secs(180),
    );
    let report = format!(
        "rtc-call.js {} after {:?}\nstdout:\n{}\nstderr (last lines):\n{}",
        match out.status {
            Some(s) => s.to_string(),
            None => "timed out".to_owned(),
        },
        out.elapsed,
        out.stdout.join("\n"),
        out.stderr_tail(60),
    );
    assert!(out.status.is_some_and(|s| s.success()), "{report}");
    let ok = out
        .stdout
        .iter()
        .find(|l| l.starts_with("rtc-call: OK "))
        .unwrap_or_else(|| panic!("no verdict: {report}"));
    let summary: serde_json::Value =
        serde_json::from_str(&ok["rtc-call: OK ".len()..]).expect("a JSON summary");
    for side in ["host", "guest"] {
        assert!(
            summary[side]["framesDecoded"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{side}: {summary}"
        );
        assert!(
            summary[side]["remoteFrame"]["width"]
                .as_u64()
                .is_some_and(|w| w > 0),
            "{side}: {summary}"
        );
    }
}
