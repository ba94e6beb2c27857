//! `docs/metrics.md` against what `/metrics` really exposes: after traffic
//! through every service, each exposed metric family and label must be in
//! the reference (which is also where its `# HELP` comes from), and each
//! documented metric must be recorded somewhere in the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use switchboard::ops::{self, documented};
use switchboard_testkit::http;
use switchboard_testkit::ws;

use crate::harness::start;
use crate::rtc_common;
use crate::support::workspace_root;

/// Metric families in a Prometheus text exposition: name -> label names seen,
/// and the set of names that have a `# HELP` line.
fn families(text: &str) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut help = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            types.entry(name.to_owned()).or_default();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            help.insert(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.split_whitespace().next().unwrap_or_default();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        // Summary and histogram series carry suffixes and a quantile label of their own.
        let family = [
            name,
            name.trim_end_matches("_sum"),
            name.trim_end_matches("_count"),
        ]
        .into_iter()
        .find(|n| types.contains_key(*n))
        .unwrap_or(name)
        .to_owned();
        let entry = types.entry(family).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap_or_default();
            if key != "quantile" && key != "le" {
                entry.insert(key.to_owned());
            }
        }
    }
    (types, help)
}

#[tokio::test]
async fn every_exposed_metric_is_documented_with_help() {
    let Some(handle) = ops::recorder() else {
        panic!("the Prometheus recorder was installed by someone else in this test binary");
    };
    let h = start(rtc_common::rtc_config(|c| c.echo.enabled = true)).await;
    // Traffic through every service, good and bad, so their metrics exist.
    let mut sub = ws::connect(h.addr, "/pubsub/metrics").await;
    assert_eq!(
        http::post(h.addr, "/pubsub/metrics", b"hi").await.status,
        200
    );
    assert_eq!(sub.text().await, "hi");
    assert_eq!(http::post(h.addr, "/pubsub/nobody", b"x").await.status, 200);
    assert_eq!(http::get(h.addr, "/pubsub/%FF").await.status, 400);
    let mut creator = ws::connect(h.addr, "/v1/ws/").await;
    let hello: serde_json::Value = serde_json::from_str(&creator.text().await).unwrap();
    let id = hello["channelid"].as_str().unwrap().to_owned();
    let mut joiner = ws::connect(h.addr, &format!("/v1/ws/{id}")).await;
    let _ = joiner.text().await;
    joiner.send_text("pairing message").await;
    assert!(creator.text().await.contains("pairing message"));
    assert_eq!(http::get(h.addr, "/v1/ws/short").await.status, 400);
    let mut alice = rtc_common::online(h.addr, "alice").await;
    let _bob = rtc_common::online(h.addr, "bob").await;
    rtc_common::send(&mut alice, "carol", "offer", "{}").await;
    assert_eq!(alice.text().await, rtc_common::NOT_FOUND);
    let mut echo = ws::connect(h.addr, "/echo").await;
    echo.send_text("e").await;
    assert_eq!(echo.text().await, "e");
    joiner.close(1000, "").await;
    let _ = joiner.until_closed().await;

    ops::refresh_gauges(&h.app);
    let text = handle.render();
    let (exposed, help) = families(&text);
    let reference: BTreeMap<_, _> = documented().into_iter().map(|d| (d.name, d)).collect();
    let mut problems = Vec::new();
    for (name, labels) in &exposed {
        match reference.get(name.as_str()) {
            None => problems.push(format!(
                "`{name}` (labels: {labels:?}) is exposed on /metrics but not documented: add a row\n    \
                 | `{name}` | counter/gauge/histogram | {} | what it counts |\n  to the table of its \
                 service in docs/metrics.md (its meaning becomes the # HELP text)",
                if labels.is_empty() {
                    "—".to_owned()
                } else {
                    labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
                }
            )),
            Some(d) => {
                for l in labels {
                    if !d.labels.contains(&l.as_str()) {
                        problems.push(format!(
                            "`{name}` has label `{l}`, which its row in docs/metrics.md does not list: \
                             add `{l}` to the labels column (and its values to the meaning)"
                        ));
                    }
                }
            }
        }
        if !help.contains(name) {
            problems.push(format!(
                "`{name}` has no # HELP line: document it in docs/metrics.md (the HELP text comes from its row)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "/metrics and docs/metrics.md disagree:\n  {}\n\n/metrics was:\n{text}",
        problems.join("\n  ")
    );
    // The traffic above really reached the metrics of every service.
    for must in [
        "switchboard_pubsub_messages_total",
        "switchboard_pairing_deliveries_total",
        "switchboard_rtc_rejected_total",
        "switchboard_service_connections",
        "switchboard_http_errors_total",
    ] {
        assert!(exposed.contains_key(must), "{must} missing from:\n{text}");
    }
    h.shutdown().await;
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_documented_metric_is_recorded_somewhere() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    let source: String = files
        .iter()
        .filter(|p| !p.ends_with("metrics_doc.rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let stale: Vec<_> = documented()
        .into_iter()
        .filter(|d| !source.contains(&format!("\"{}\"", d.name)))
        .map(|d| d.name)
        .collect();
    assert!(
        stale.is_empty(),
        "docs/metrics.md documents metrics that no code under crates/ records: {stale:?}; \
         remove their rows (or fix the name)"
    );
}

/// Every `switchboard_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("switchboard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_alert_rules_and_the_dashboard_use_documented_metrics() {
    let root = workspace_root().join("docs/ops");
    let alerts = std::fs::read_to_string(root.join("prometheus-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(
        panels
            .iter()
            .all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty()))
    );
    let documented: BTreeSet<_> = documented()
        .into_iter()
        .map(|d| d.name.to_owned())
        .collect();
    for (file, text) in [
        ("prometheus-alerts.yml", &alerts),
        ("grafana-dashboard.json", &dashboard),
    ] {
        let names = metric_names(text);
        assert!(names.len() > 5, "{file} uses few metrics: {names:?}");
        let unknown: Vec<_> = names.difference(&documented).collect();
        assert!(
            unknown.is_empty(),
            "docs/ops/{file} uses metrics that docs/metrics.md does not document: {unknown:?}"
        );
    }
    for signal in [
        "slow_consumer",
        "drops_total",
        "handshake",
        "bus_errors",
        "store_errors",
    ] {
        assert!(alerts.contains(signal), "the alert rules cover {signal}");
    }
}
