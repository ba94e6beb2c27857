//! The operations endpoints, on their own listener (loopback by default):
//! `/metrics` (Prometheus text) and `/healthz` (200 `ok` when ready; 503 with
//! the reason while the cluster bus is not connected).
//!
//! `docs/metrics.md` is the reference of every metric and the source of their
//! `# HELP` texts: its table rows are compiled in ([`documented`]) and
//! described to the recorder when it is installed.

use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::App;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The metrics reference, compiled in.
const REFERENCE: &str = include_str!("../../../docs/metrics.md");

/// The kind of a documented metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (rendered as a summary).
    Histogram,
}

/// One row of `docs/metrics.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    /// The metric name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its label names.
    pub labels: Vec<&'static str>,
    /// What it means (the `# HELP` text).
    pub help: &'static str,
}

/// Every metric documented in `docs/metrics.md`: the table rows whose first
/// cell is a backquoted `switchboard_…` name.
pub fn documented() -> Vec<Documented> {
    let mut out = Vec::new();
    for line in REFERENCE.lines() {
        if !line.starts_with("| `switchboard_") {
            continue;
        }
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        let cells: Vec<&'static str> = inner.splitn(4, " | ").map(str::trim).collect();
        let [name, kind, labels, help] = cells[..] else {
            continue;
        };
        let kind = match kind {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            _ => continue,
        };
        let name = name.trim_matches('`');
        let labels = labels
            .split(',')
            .map(|l| l.trim().trim_matches('`'))
            .filter(|l| !l.is_empty() && *l != "—")
            .collect();
        out.push(Documented {
            name,
            kind,
            labels,
            help,
        });
    }
    out
}

/// Installs the Prometheus recorder once per process, describes every
/// documented metric, and returns its handle. `None` if another recorder was
/// installed first (tests running several apps).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            for d in documented() {
                match d.kind {
                    Kind::Counter => metrics::describe_counter!(d.name, d.help),
                    Kind::Gauge => metrics::describe_gauge!(d.name, d.help),
                    Kind::Histogram => metrics::describe_histogram!(d.name, d.help),
                }
            }
            Some(handle)
        })
        .as_ref()
}

/// Sets the gauges that are read from live state rather than counted.
pub fn refresh_gauges(app: &App) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        metrics::gauge!("switchboard_runtime_alive_tasks")
            .set(rt.metrics().num_alive_tasks() as f64);
    }
    metrics::gauge!("switchboard_connections").set(app.registry.len() as f64);
    for (svc, n) in app.registry.count_by_service() {
        metrics::gauge!("switchboard_service_connections", "service" => svc).set(n as f64);
    }
    if let Some(p) = &app.pubsub {
        metrics::gauge!("switchboard_pubsub_channels").set(p.channel_count() as f64);
    }
    if let Some(r) = &app.rtc {
        metrics::gauge!("switchboard_rtc_online_users").set(r.online() as f64);
    }
    if let Some(p) = &app.pairing {
        metrics::gauge!("switchboard_pairing_channels").set(p.channel_count() as f64);
    }
}

/// `/healthz`: ready when the bus can carry messages (always, on one node).
async fn health(
    axum::extract::State(app): axum::extract::State<App>,
) -> (http::StatusCode, String) {
    let bus = app.relay.bus().health();
    if bus.connected {
        (http::StatusCode::OK, "ok\n".into())
    } else {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", bus.detail),
        )
    }
}

/// The ops router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(health).with_state(app.clone()))
        .route(
            "/metrics",
            get(move || {
                let app = app.clone();
                async move {
                    refresh_gauges(&app);
                    recorder().map(PrometheusHandle::render).unwrap_or_default()
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_parses() {
        let all = documented();
        assert!(all.len() > 20, "{all:?}");
        let d = all
            .iter()
            .find(|d| d.name == "switchboard_ws_disconnects_total")
            .expect("documented");
        assert_eq!(d.kind, Kind::Counter);
        assert_eq!(d.labels, ["service", "reason"]);
        assert!(d.help.starts_with("WebSocket connections that ended"));
        let c = all
            .iter()
            .find(|d| d.name == "switchboard_connections")
            .expect("documented");
        assert!(c.labels.is_empty());
        assert!(all.iter().all(|d| d.name.starts_with("switchboard_")));
    }
}
