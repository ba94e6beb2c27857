//! The meeting page (native mode): `GET /meeting/{id}/{key}` serves a
//! self-contained page (chat, members with colors, the meeting's state, the
//! running poll with vote buttons and a live tally, and for admins: open,
//! finish, new poll, abort poll, kick) that speaks the meetings protocol to
//! `/ws/meeting/`. The key in the URL is the member's credential, as in
//! pgeu-system's "join from another device" link.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use switchboard_core::store::meetings::MeetingId;
use switchboard_edge::text_response;

use super::Meetings;

/// Where meeting pages live.
pub const PAGE_BASE: &str = "/meeting";

const TEMPLATE: &str = include_str!("meeting.html");

/// The page router.
pub fn router(svc: Arc<Meetings>) -> Router {
    Router::new()
        .route(&format!("{PAGE_BASE}/{{id}}/{{key}}"), get(page))
        .with_state(svc)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn page(
    State(svc): State<Arc<Meetings>>,
    Path((id, key)): Path<(MeetingId, String)>,
) -> Response {
    let member = match svc.store.member_by_key(id, &key).await {
        Ok(Some(m)) => m,
        Ok(None) => return text_response(StatusCode::NOT_FOUND, "no such meeting key\n"),
        Err(_) => {
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not available\n",
            );
        }
    };
    let html = TEMPLATE
        .replace("{{NAME}}", &escape(&format!("Meeting {id}")))
        .replace("{{MEETING}}", &id.to_string())
        .replace("{{KEY}}", &escape(&key))
        .replace("{{SELF}}", &member.key_id.to_string())
        .replace("{{ADMIN}}", if member.admin { "true" } else { "false" });
    let mut r = html.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_every_placeholder_and_escaping_works() {
        for p in [
            "{{NAME}}",
            "{{MEETING}}",
            "{{KEY}}",
            "{{SELF}}",
            "{{ADMIN}}",
        ] {
            assert!(TEMPLATE.contains(p), "{p}");
        }
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
