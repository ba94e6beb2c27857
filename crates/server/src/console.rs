//! The web console at `/`: which services run and where, live counters, and
//! links to each service's demo page. `/api/stats` feeds the counters.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;

use crate::App;

/// A snapshot of the counters shown on the console.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    /// Live WebSocket connections.
    pub connections: usize,
    /// Pubsub channels with subscribers.
    pub channels: usize,
    /// Messages published since start.
    pub messages: u64,
    /// Frames delivered to subscribers since start.
    pub deliveries: u64,
    /// Publishes that found no subscriber.
    pub drops: u64,
    /// Subscribers disconnected as slow.
    pub slow_consumers: u64,
}

/// Reads the counters.
pub fn stats(app: &App) -> Stats {
    let (mut messages, mut deliveries, mut drops, mut slow, mut channels) = (0, 0, 0, 0, 0);
    if let Some(p) = &app.pubsub {
        let s = p.stats();
        messages = s.messages.load(Ordering::Relaxed);
        deliveries = s.deliveries.load(Ordering::Relaxed);
        drops = s.drops.load(Ordering::Relaxed);
        slow = s.slow_consumers.load(Ordering::Relaxed);
        channels = p.channel_count();
    }
    Stats {
        connections: app.registry.len(),
        channels,
        messages,
        deliveries,
        drops,
        slow_consumers: slow,
    }
}

/// The console routes.
pub fn router(app: App) -> Router {
    let page_app = app.clone();
    Router::new()
        .route("/", get(move || async move { page(&page_app) }))
        .route(
            "/api/stats",
            get(move || async move { Json(stats(&app)).into_response() }),
        )
}

fn page(app: &App) -> Html<String> {
    let mut services = String::new();
    if app.pubsub.is_some() {
        let p = &app.config.pubsub.prefix;
        services.push_str(&format!(
            "<tr><td>pubsub</td><td>Pinghub-compatible publish/subscribe by URL path</td>\
             <td><code>ws://HOST{p}/&lt;channel&gt;</code>, <code>POST {p}/&lt;channel&gt;</code></td>\
             <td><a href=\"{p}/demo\">test page</a></td></tr>"
        ));
    }
    if let Some(pairing) = &app.pairing {
        let p = &app.config.pairing.prefix;
        let channels = pairing.channel_count();
        services.push_str(&format!(
            "<tr><td>pairing</td><td>channelserver-compatible device pairing (Firefox Accounts); \
             {channels} open channel(s)</td>\
             <td><code>ws://HOST{p}/v1/ws/</code>, <code>ws://HOST{p}/v1/ws/&lt;channel id&gt;</code></td><td></td></tr>"
        ));
    }
    if let Some(rtc) = &app.rtc {
        let p = &rtc.config().prefix;
        let demo = if rtc.config().call_page {
            format!("<a href=\"{p}/call\">video call</a>")
        } else {
            String::new()
        };
        services.push_str(&format!(
            "<tr><td>rtc</td><td>webrtc-signal-server-compatible signaling between named users ({} online)</td>\
             <td><code>POST {p}/v1/register</code>, <code>ws://HOST{p}/v1/connect</code></td><td>{demo}</td></tr>",
            rtc.online()
        ));
    }
    if app.config.echo.enabled {
        services.push_str("<tr><td>echo</td><td>test-only WebSocket echo</td><td><code>ws://HOST/echo</code></td><td></td></tr>");
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:56rem;color:#1d2330;padding:0 1rem}}
h1{{margin-bottom:.2rem}} .sub{{color:#667}} table{{border-collapse:collapse;width:100%;margin:1rem 0}}
td,th{{border-bottom:1px solid #e3e6ea;padding:.45rem;text-align:left;vertical-align:top}}
.stats{{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem;margin:1rem 0}}
.stat{{background:#f4f6f9;border-radius:6px;padding:.7rem}} .stat b{{display:block;font-size:1.6rem}}
</style></head><body>
<h1>Switchboard</h1><p class="sub">One realtime WebSocket relay, several protocols.</p>
<div class="stats">
<div class="stat"><b id="connections">–</b>connections</div>
<div class="stat"><b id="channels">–</b>channels</div>
<div class="stat"><b id="rate">–</b>messages/s</div>
<div class="stat"><b id="drops">–</b>drops</div>
<div class="stat"><b id="slow">–</b>slow consumers</div>
</div>
<h2>Services</h2>
<table><tr><th>service</th><th>what</th><th>URL</th><th>demo</th></tr>{services}</table>
<p class="sub">Prometheus metrics and health checks are served on the ops listener (loopback by default).</p>
<script>
"use strict";
let last = null;
async function tick() {{
  try {{
    const r = await fetch("/api/stats", {{cache: "no-store"}});
    const s = await r.json();
    const now = performance.now();
    document.getElementById("connections").textContent = s.connections;
    document.getElementById("channels").textContent = s.channels;
    document.getElementById("drops").textContent = s.drops;
    document.getElementById("slow").textContent = s.slow_consumers;
    if (last) {{
      const rate = (s.messages - last.messages) / ((now - last.t) / 1000);
      document.getElementById("rate").textContent = rate.toFixed(1);
    }}
    last = {{messages: s.messages, t: now}};
  }} catch (e) {{ /* server restarting; try again next tick */ }}
}}
tick(); setInterval(tick, 1000);
</script>
</body></html>"#
    ))
}
