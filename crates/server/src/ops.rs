//! The operations endpoints, on their own listener (loopback by default):
//! `/metrics` (Prometheus text) and `/healthz` (200 `ok` when ready; 503 with
//! the reason while the cluster bus is not connected).

use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::App;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
/// `None` if another recorder was installed first (tests running several apps).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
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
