//! A meeting end to end in Debian's Chromium, driven by Playwright
//! (`tests/node/meeting.js`): three members (one admin) on the native meeting
//! page join, chat, open the meeting, vote on a poll until it completes, the
//! admin kicks one member, another comes back on a new page (history replay),
//! and the admin finishes the meeting. The meeting is set up through the setup
//! API, and the log is checked through it afterwards.
//!
//! Needs `node`, Debian's `chromium` (or `$SWITCHBOARD_CHROMIUM`) and
//! `tests/node/node_modules/playwright-core` (`bash scripts/node-deps.sh`):
//! skipped loudly when one is missing, a failure under `CI=true`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::http;

use crate::support::{
    ServerProcess, missing_dependency, require_command, run_with_timeout, workspace_root,
};

const INSTALL: &str =
    "bash scripts/node-deps.sh (installs chromium and the npm packages of tests/node)";

async fn post(server: &ServerProcess, path: &str, body: Value) -> Value {
    let r = http::request(
        server.addr(),
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    assert!(
        r.status == 201 || r.status == 204,
        "{path}: {} {}",
        r.status,
        r.text()
    );
    serde_json::from_str(&r.text()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn three_members_hold_a_meeting_in_chromium() {
    let Some(node) = require_command("node", "apt-get install -y nodejs npm") else {
        return;
    };
    let chromium =
        std::env::var("SWITCHBOARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if require_command(&chromium, INSTALL).is_none() {
        return;
    }
    let node_dir = workspace_root().join("tests/node");
    let playwright = node_dir.join("node_modules/playwright-core/package.json");
    if !playwright.is_file() {
        missing_dependency(
            "the npm package playwright-core",
            &format!("{} is missing", playwright.display()),
            INSTALL,
        );
        return;
    }
    let server = ServerProcess::serve_config(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nenabled = false\n[rtc]\nenabled = false\n",
        1,
    );
    let meeting = post(&server, "/meeting/api/meetings", json!({"name": "AGM"})).await["id"]
        .as_i64()
        .unwrap();
    let mut urls = serde_json::Map::new();
    for (who, name) in [("alice", "Alice Admin"), ("bob", "Bob"), ("carol", "Carol")] {
        let member =
            post(&server, "/meeting/api/members", json!({"name": name})).await["id"].clone();
        let key = post(
            &server,
            &format!("/meeting/api/meetings/{meeting}/keys"),
            json!({"member": member}),
        )
        .await;
        if who == "alice" {
            post(
                &server,
                &format!("/meeting/api/meetings/{meeting}/admins"),
                json!({"member": member}),
            )
            .await;
        }
        urls.insert(
            who.into(),
            json!(server.http_url(key["page"].as_str().unwrap())),
        );
    }
    let out = tokio::task::spawn_blocking({
        let urls = Value::Object(urls).to_string();
        let chromium = chromium.clone();
        move || {
            run_with_timeout(
                Command::new(node)
                    .arg(node_dir.join("meeting.js"))
                    .arg(urls)
                    .env("SWITCHBOARD_CHROMIUM", &chromium)
                    .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                    .current_dir(&node_dir),
                Duration::from_secs(180),
            )
        }
    })
    .await
    .expect("join");
    let report = format!(
        "meeting.js {} after {:?}\nstdout:\n{}\nstderr (last lines):\n{}\nserver:\n{}",
        match out.status {
            Some(s) => s.to_string(),
            None => "timed out".to_owned(),
        },
        out.elapsed,
        out.stdout.join("\n"),
        out.stderr_tail(80),
        server.output(40),
    );
    assert!(out.status.is_some_and(|s| s.success()), "{report}");
    let ok = out
        .stdout
        .iter()
        .find(|l| l.starts_with("meeting: OK "))
        .unwrap_or_else(|| panic!("no verdict: {report}"));
    let summary: Value = serde_json::from_str(&ok["meeting: OK ".len()..]).expect("a JSON summary");
    assert!(
        summary["tallyAfterOne"]
            .as_str()
            .unwrap()
            .starts_with("1 of 3"),
        "{summary}"
    );
    assert_eq!(
        summary["aliceMembers"],
        json!(["Alice Admin", "Bob"]),
        "{summary}"
    );
    // The results are in the permanent record.
    let log = http::get(
        server.addr(),
        &format!("/meeting/api/meetings/{meeting}/log"),
    )
    .await;
    let rows: Value = serde_json::from_str(&log.text()).unwrap();
    let texts: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    for want in [
        "Hello from Bob",
        "This meeting is now open",
        "Answer \"Yes\": 2 votes",
        "Answer \"No\": 1 vote",
        "User Carol has been disconnected by Alice Admin",
        "This meeting is now finished",
    ] {
        assert!(texts.contains(&want), "{want} missing from {texts:?}");
    }
}
