//! The web console at `/`: which services run and where (with the host the
//! browser used), live counters per service, charts of connections and
//! messages/s over the last minutes, links to the ops endpoints, and the demo
//! pages (pairing at `/demo/pairing`; pubsub and rtc serve their own).
//! `/api/stats` feeds the counters and charts. No asset comes from elsewhere.
//!
//! Adding a service to the console is adding one [`ServiceCard`] in [`cards`]:
//! its description, URLs, counters (which `/api/stats` then carries) and demos.

mod history;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;

use crate::App;

pub use history::{History, INTERVAL, SAMPLES, Sample, sample};

const INDEX: &str = include_str!("assets/index.html");
const PAIRING_DEMO: &str = include_str!("assets/pairing.html");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// One live number on a service's card.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Counter {
    /// Stable id, e.g. `channels`.
    pub key: &'static str,
    /// What a person reads, e.g. `open channels`.
    pub label: &'static str,
    /// The value now.
    pub value: u64,
}

/// A URL a service answers on: a scheme family and a path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `ws` (shown as ws:// or wss://) or `http` (http:// or https://).
    pub scheme: &'static str,
    /// The path, e.g. `/pubsub/<channel>`.
    pub path: String,
    /// A note shown after it, e.g. `POST to publish`.
    pub note: &'static str,
}

/// One service as the console shows it.
#[derive(Debug, Clone)]
pub struct ServiceCard {
    /// The service name (`pubsub`, `pairing`, …).
    pub name: &'static str,
    /// One line on what it does and what it replaces.
    pub what: &'static str,
    /// Where it answers.
    pub endpoints: Vec<Endpoint>,
    /// Live numbers.
    pub counters: Vec<Counter>,
    /// Demo pages: (label, path).
    pub demos: Vec<(&'static str, String)>,
}

/// Channels and users of the whole cluster (this node's own when it is alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct pubsub channels with subscribers on any node.
    pub pubsub_channels: usize,
    /// Distinct pairing channels with members on any node.
    pub pairing_channels: usize,
    /// Users online under a name, on every node.
    pub rtc_online: usize,
    /// Distinct meetings with a running actor on any node.
    pub meetings_running: usize,
}

/// This node's report for cluster-wide counts: hashes of its channels (so the
/// union counts a channel on two nodes once) and its online users.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Report {
    pubsub: Vec<u64>,
    pairing: Vec<u64>,
    rtc_online: usize,
    #[serde(default)]
    meetings: Vec<i64>,
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sets this node's reporter on the membership (called once the services exist).
pub fn install_reporter(app: &App) {
    let hub = app.relay.hub().clone();
    let rtc = app.rtc.clone();
    let meetings = app.meetings.clone();
    app.membership.set_reporter(std::sync::Arc::new(move || {
        let report = Report {
            pubsub: hub
                .topics_with_prefix("pubsub:")
                .iter()
                .map(|t| fnv(t))
                .collect(),
            pairing: hub
                .topics_with_prefix("pairing:")
                .iter()
                .map(|t| fnv(t))
                .collect(),
            rtc_online: rtc.as_ref().map_or(0, |r| r.online()),
            meetings: meetings
                .as_ref()
                .map_or_else(Vec::new, |m| m.running().iter().map(|h| h.id()).collect()),
        };
        serde_json::to_vec(&report).unwrap_or_default().into()
    }));
}

impl Counts {
    /// This node's own numbers.
    pub fn local(app: &App) -> Self {
        Counts {
            pubsub_channels: app.pubsub.as_ref().map_or(0, |p| p.channel_count()),
            pairing_channels: app.pairing.as_ref().map_or(0, |p| p.channel_count()),
            rtc_online: app.rtc.as_ref().map_or(0, |r| r.online()),
            meetings_running: app.meetings.as_ref().map_or(0, |m| m.running().len()),
        }
    }

    /// The whole cluster's, from every live node's report.
    pub async fn cluster(app: &App) -> Self {
        let mut pubsub = std::collections::HashSet::new();
        let mut pairing = std::collections::HashSet::new();
        let mut rtc_online = 0;
        let mut meetings = std::collections::HashSet::new();
        for (_, bytes) in app.membership.gather().await {
            let Ok(r) = serde_json::from_slice::<Report>(&bytes) else {
                continue;
            };
            pubsub.extend(r.pubsub);
            pairing.extend(r.pairing);
            rtc_online += r.rtc_online;
            meetings.extend(r.meetings);
        }
        Counts {
            pubsub_channels: pubsub.len(),
            pairing_channels: pairing.len(),
            rtc_online,
            meetings_running: meetings.len(),
        }
    }
}

/// Every enabled service's card, with `counts` for the cluster-wide numbers.
pub fn cards(app: &App, counts: &Counts) -> Vec<ServiceCard> {
    let by_service = app.registry.count_by_service();
    let conns = |name: &str| by_service.get(name).copied().unwrap_or(0) as u64;
    let mut out = Vec::new();
    if let Some(p) = &app.pubsub {
        let s = p.stats();
        let prefix = &app.config.pubsub.prefix;
        out.push(ServiceCard {
            name: "pubsub",
            what: "Publish/subscribe by URL path (Pinghub)",
            endpoints: vec![
                Endpoint {
                    scheme: "ws",
                    path: format!("{prefix}/<channel>"),
                    note: "subscribe and publish",
                },
                Endpoint {
                    scheme: "http",
                    path: format!("{prefix}/<channel>"),
                    note: "POST to publish",
                },
            ],
            counters: vec![
                Counter {
                    key: "channels",
                    label: "channels",
                    value: counts.pubsub_channels as u64,
                },
                Counter {
                    key: "subscribers",
                    label: "subscribers",
                    value: conns("pubsub"),
                },
                Counter {
                    key: "messages",
                    label: "messages",
                    value: s.messages.load(Ordering::Relaxed),
                },
                Counter {
                    key: "drops",
                    label: "drops",
                    value: s.drops.load(Ordering::Relaxed),
                },
            ],
            demos: vec![("test page", format!("{prefix}/demo"))],
        });
    }
    if app.pairing.is_some() {
        let prefix = &app.config.pairing.prefix;
        out.push(ServiceCard {
            name: "pairing",
            what: "Device pairing channels for Firefox Accounts (channelserver)",
            endpoints: vec![
                Endpoint {
                    scheme: "ws",
                    path: format!("{prefix}/v1/ws/"),
                    note: "create a channel",
                },
                Endpoint {
                    scheme: "ws",
                    path: format!("{prefix}/v1/ws/<channel id>"),
                    note: "join it",
                },
            ],
            counters: vec![
                Counter {
                    key: "channels",
                    label: "open channels",
                    value: counts.pairing_channels as u64,
                },
                Counter {
                    key: "connections",
                    label: "connections",
                    value: conns("pairing"),
                },
            ],
            demos: vec![("pairing demo", "/demo/pairing".into())],
        });
    }
    if let Some(r) = &app.rtc {
        let prefix = &r.config().prefix;
        let s = r.stats();
        out.push(ServiceCard {
            name: "rtc",
            what: "WebRTC signaling between named users (webrtc-signal-server)",
            endpoints: vec![
                Endpoint {
                    scheme: "http",
                    path: format!("{prefix}/v1/register"),
                    note: "POST {\"username\":…} sets the cookie",
                },
                Endpoint {
                    scheme: "ws",
                    path: format!("{prefix}/v1/connect"),
                    note: "with the cookie",
                },
            ],
            counters: vec![
                Counter {
                    key: "online",
                    label: "users online",
                    value: counts.rtc_online as u64,
                },
                Counter {
                    key: "relayed",
                    label: "messages relayed",
                    value: s.relayed.load(Ordering::Relaxed),
                },
                Counter {
                    key: "registrations",
                    label: "registrations",
                    value: s.registrations.load(Ordering::Relaxed),
                },
            ],
            demos: if r.config().call_page {
                vec![("video call", format!("{prefix}/call"))]
            } else {
                Vec::new()
            },
        });
    }
    if let Some(m) = &app.meetings {
        let mut endpoints = vec![Endpoint {
            scheme: "ws",
            path: format!(
                "{}<meeting>/<54-character key>/<highest seen id>",
                switchboard_services::meetings::WS_PREFIX
            ),
            note: "a member's connection",
        }];
        if m.config().status_endpoint {
            endpoints.push(Endpoint {
                scheme: "http",
                path: "/__meetingstatus".into(),
                note: "meetings and members (JSON)",
            });
        }
        out.push(ServiceCard {
            name: "meetings",
            what: "Member meetings with chat, polls and an archive (pgeu-meetingserver)",
            endpoints,
            counters: vec![
                Counter {
                    key: "meetings",
                    label: "meetings running",
                    value: counts.meetings_running as u64,
                },
                Counter {
                    key: "members",
                    label: "members connected",
                    value: conns(switchboard_services::meetings::SERVICE),
                },
            ],
            demos: Vec::new(),
        });
    }
    if let Some(t) = &app.talk {
        let prefix = &t.config().prefix;
        let s = t.stats();
        out.push(ServiceCard {
            name: "talk",
            what: "Standalone signaling for Nextcloud Talk (nextcloud-spreed-signaling)",
            endpoints: vec![
                Endpoint {
                    scheme: "ws",
                    path: format!("{prefix}/spreed"),
                    note: "Talk clients (hello, rooms, messages)",
                },
                Endpoint {
                    scheme: "http",
                    path: format!("{prefix}/api/v1/room/<room>"),
                    note: "signed requests from Nextcloud",
                },
            ],
            counters: vec![
                Counter {
                    key: "sessions",
                    label: "sessions",
                    value: s.sessions.load(Ordering::Relaxed),
                },
                Counter {
                    key: "rooms",
                    label: "rooms",
                    value: s.rooms.load(Ordering::Relaxed),
                },
                Counter {
                    key: "relayed",
                    label: "messages relayed",
                    value: s.relayed.load(Ordering::Relaxed),
                },
            ],
            demos: Vec::new(),
        });
    }
    if app.config.echo.enabled {
        out.push(ServiceCard {
            name: "echo",
            what: "Test-only WebSocket echo",
            endpoints: vec![Endpoint {
                scheme: "ws",
                path: "/echo".into(),
                note: "",
            }],
            counters: Vec::new(),
            demos: Vec::new(),
        });
    }
    out
}

/// Counters of one service in `/api/stats`.
#[derive(Debug, serde::Serialize)]
pub struct ServiceStats {
    /// The service.
    pub name: &'static str,
    /// Its counters.
    pub counters: Vec<Counter>,
}

/// A snapshot of the counters shown on the console.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    /// Live WebSocket connections.
    pub connections: usize,
    /// Pubsub channels with subscribers.
    pub channels: usize,
    /// Messages relayed since start, all services (pubsub publishes, rtc relays).
    pub messages: u64,
    /// Frames delivered to pubsub subscribers since start.
    pub deliveries: u64,
    /// Pubsub publishes that found no subscriber.
    pub drops: u64,
    /// Subscribers disconnected as slow.
    pub slow_consumers: u64,
    /// Per service.
    pub services: Vec<ServiceStats>,
    /// Seconds between history samples.
    pub interval_secs: u64,
    /// Samples the history keeps (the charts' width).
    pub samples: usize,
    /// Recent samples, oldest first.
    pub history: Vec<Sample>,
}

/// This node's live connections and messages relayed since start (the charts' inputs).
pub fn totals(app: &App) -> (usize, u64) {
    let mut messages = 0;
    if let Some(p) = &app.pubsub {
        messages += p.stats().messages.load(Ordering::Relaxed);
    }
    if let Some(r) = &app.rtc {
        messages += r.stats().relayed.load(Ordering::Relaxed);
    }
    if let Some(t) = &app.talk {
        messages += t.stats().relayed.load(Ordering::Relaxed);
    }
    (app.registry.len(), messages)
}

/// Reads the counters; channels and users are the whole cluster's.
pub async fn stats(app: &App) -> Stats {
    let counts = Counts::cluster(app).await;
    let (mut messages, mut deliveries, mut drops, mut slow, mut channels) = (0, 0, 0, 0, 0);
    if let Some(p) = &app.pubsub {
        let s = p.stats();
        messages = s.messages.load(Ordering::Relaxed);
        deliveries = s.deliveries.load(Ordering::Relaxed);
        drops = s.drops.load(Ordering::Relaxed);
        slow = s.slow_consumers.load(Ordering::Relaxed);
        channels = counts.pubsub_channels;
    }
    if let Some(r) = &app.rtc {
        messages += r.stats().relayed.load(Ordering::Relaxed);
    }
    Stats {
        connections: app.registry.len(),
        channels,
        messages,
        deliveries,
        drops,
        slow_consumers: slow,
        services: cards(app, &counts)
            .into_iter()
            .map(|c| ServiceStats {
                name: c.name,
                counters: c.counters,
            })
            .collect(),
        interval_secs: INTERVAL.as_secs(),
        samples: SAMPLES,
        history: app.history.samples(),
    }
}

/// The console routes.
pub fn router(app: App) -> Router {
    let page_app = app.clone();
    let demo_app = app.clone();
    Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move { page(&page_app, &headers) }),
        )
        .route(
            "/api/stats",
            get(move || async move { Json(stats(&app).await).into_response() }),
        )
        .route(
            "/demo/pairing",
            get(move || async move { pairing_demo(&demo_app) }),
        )
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
}

async fn favicon() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The host the browser asked for (for URLs in the page), escaped; JavaScript
/// corrects it from `location` when a proxy rewrote it.
fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    esc(host)
}

fn page(app: &App, headers: &HeaderMap) -> Html<String> {
    let host = request_host(headers);
    let tls = app.tls.is_some();
    let mut rows = String::new();
    for card in cards(app, &Counts::local(app)) {
        let mut urls = String::new();
        for e in &card.endpoints {
            let scheme = match (e.scheme, tls) {
                ("ws", false) => "ws",
                ("ws", true) => "wss",
                (_, false) => "http",
                (_, true) => "https",
            };
            let note = if e.note.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"note\">{}</span>", esc(e.note))
            };
            urls.push_str(&format!(
                "<li><code class=\"url\" data-scheme=\"{}\" data-path=\"{path}\">{scheme}://{host}{path}</code>{note}</li>",
                e.scheme,
                path = esc(&e.path),
            ));
        }
        let mut counters = String::new();
        for c in &card.counters {
            counters.push_str(&format!(
                "<div class=\"stat\"><b id=\"svc-{}-{}\">{}</b>{}</div>",
                card.name,
                c.key,
                c.value,
                esc(c.label)
            ));
        }
        let demos: Vec<String> = card
            .demos
            .iter()
            .map(|(label, path)| format!("<a href=\"{}\">{}</a>", esc(path), esc(label)))
            .collect();
        rows.push_str(&format!(
            "<section class=\"card\" id=\"svc-{name}\"><h3>{name}</h3><p>{what}</p>\
             <ul class=\"urls\">{urls}</ul><div class=\"stats small\">{counters}</div>\
             <p class=\"demos\">{demos}</p></section>",
            name = card.name,
            what = esc(card.what),
            demos = demos.join(" · "),
        ));
    }
    let ops = if app.config.ops.enabled {
        let bound = app.ops_url.get().cloned();
        let base = esc(&bound.unwrap_or_else(|| format!("http://{}", app.config.ops.listen)));
        format!(
            "Prometheus metrics at <a href=\"{base}/metrics\">{base}/metrics</a> and the health check at \
             <a href=\"{base}/healthz\">{base}/healthz</a>, on the ops listener (<code>ops.listen</code>; \
             reachable from where that address is)."
        )
    } else {
        "The ops listener (metrics, health) is off (<code>ops.enabled</code>).".to_owned()
    };
    Html(
        INDEX
            .replace("{{SERVICES}}", &rows)
            .replace("{{OPS}}", &ops)
            .replace("{{VERSION}}", env!("CARGO_PKG_VERSION")),
    )
}

fn pairing_demo(app: &App) -> Response {
    if app.pairing.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "the pairing service is not enabled\n",
        )
            .into_response();
    }
    let prefix = esc(&app.config.pairing.prefix);
    Html(PAIRING_DEMO.replace("{{PREFIX}}", &prefix)).into_response()
}
