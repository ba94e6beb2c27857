//! CPU profiles in pprof format on the ops listener (the meetingserver
//! persona's `-profilelisten`, or `ops.profiling = true`):
//! `GET /debug/pprof/profile?seconds=N` samples every thread at 99 Hz for N
//! seconds (default 30, at most 300) and answers the protobuf profile that
//! `go tool pprof` and `pprof` read. One profile runs at a time (409 otherwise).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use pprof::protos::Message;
use serde::Deserialize;
use switchboard_edge::text_response;

static RUNNING: AtomicBool = AtomicBool::new(false);

/// The most seconds one profile may take.
pub const MAX_SECONDS: u64 = 300;

/// The profiling routes.
pub fn router() -> Router {
    Router::new()
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(profile))
}

async fn index() -> Response {
    text_response(
        StatusCode::OK,
        "switchboard profiles:\n  /debug/pprof/profile?seconds=30  CPU profile (pprof protobuf)\n",
    )
}

#[derive(Debug, Deserialize)]
struct Params {
    seconds: Option<u64>,
}

struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

async fn profile(Query(p): Query<Params>) -> Response {
    let seconds = p.seconds.unwrap_or(30);
    if seconds == 0 || seconds > MAX_SECONDS {
        return text_response(
            StatusCode::BAD_REQUEST,
            format!("seconds must be 1 to {MAX_SECONDS}\n"),
        );
    }
    if RUNNING.swap(true, Ordering::AcqRel) {
        return text_response(StatusCode::CONFLICT, "a profile is already running\n");
    }
    let _running = Running;
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(99)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(g) => g,
        Err(e) => {
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start the profiler: {e}\n"),
            );
        }
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let encoded = guard
        .report()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|r| r.pprof().map_err(|e| e.to_string()))
        .map(|p| p.encode_to_vec());
    match encoded {
        Ok(bytes) => {
            let mut r = bytes.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"profile\""),
            );
            r
        }
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot build the profile: {e}\n"),
        ),
    }
}
