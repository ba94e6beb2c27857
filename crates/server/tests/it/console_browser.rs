//! The web console and its demos in a real Chromium, driven by Playwright
//! (`tests/node/console.js`): the real host in the URLs, a favicon, counters
//! and charts that move under traffic, the pubsub test page and its history
//! panel (last, drop, reconnect with since), the pairing demo
//! (create, join, messages both ways), and a layout that holds at 390 px.
//! Screenshots go to `$SWITCHBOARD_SCREENSHOTS` (default
//! `<target>/console-screenshots`; the ones in `docs/screenshots/` were made so).
//!
//! Needs `node`, Debian's `chromium` (or `$SWITCHBOARD_CHROMIUM`) and
//! `tests/node/node_modules/playwright-core` (`bash scripts/node-deps.sh`):
//! skipped loudly when one is missing, a failure under `CI=true`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    ServerProcess, missing_dependency, require_command, run_with_timeout, target_dir,
    workspace_root,
};

const INSTALL: &str =
    "bash scripts/node-deps.sh (installs chromium and the npm packages of tests/node)";

#[test]
fn the_console_counts_live_and_its_demos_work_in_a_browser() {
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
    let shots = std::env::var_os("SWITCHBOARD_SCREENSHOTS")
        .map_or_else(|| target_dir().join("console-screenshots"), PathBuf::from);
    std::fs::create_dir_all(&shots).expect("the screenshot directory");

    let server = ServerProcess::serve_config(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite::memory:\"\n\
         [[pubsub.history]]\nprefix = \"/feed/\"\nmax_messages = 50\nmax_age_secs = 600\n",
        1,
    );
    let out = run_with_timeout(
        Command::new(node)
            .arg(node_dir.join("console.js"))
            .arg(server.http_url(""))
            .arg(&shots)
            .env("SWITCHBOARD_CHROMIUM", &chromium)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .current_dir(&node_dir),
        Duration::from_secs(180),
    );
    let report = format!(
        "console.js {} after {:?}\nstdout:\n{}\nstderr (last lines):\n{}",
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
        .find(|l| l.starts_with("console: OK "))
        .unwrap_or_else(|| panic!("no verdict: {report}"));
    let summary: serde_json::Value =
        serde_json::from_str(&ok["console: OK ".len()..]).expect("a JSON summary");
    assert_eq!(
        summary["pairingChannel"].as_str().map(str::len),
        Some(22),
        "{summary}"
    );
    assert!(
        summary["historyPosition"]
            .as_str()
            .is_some_and(|p| p.contains(" / ")),
        "{summary}"
    );
    for shot in [
        "console.png",
        "console-390.png",
        "pairing-demo.png",
        "pubsub-history.png",
    ] {
        assert!(shots.join(shot).is_file(), "{shot} was not written");
    }
}
