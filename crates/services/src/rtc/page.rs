//! The demo call page at `{prefix}/call`: one self-contained HTML file (no
//! CDN) that registers a name, hosts or joins a call by the host's name, and
//! negotiates WebRTC through this service exactly as the original web client
//! did (`video-offer` from the joiner, `video-answer`, `ice-candidate` with
//! `null` for the end of the candidates), but sends each side's candidates to
//! the other side.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use super::RtcConfig;
use super::wire::push_json_string;

const TEMPLATE: &str = include_str!("call.html");

/// The page with the prefix and the cookie mode filled in.
pub(crate) fn render(cfg: &RtcConfig) -> String {
    // Escaped as a JSON string with `<`, `>` and `&` as \u escapes, so it is
    // safe inside a <script> element whatever the prefix holds.
    let mut base = String::new();
    push_json_string(&mut base, &cfg.prefix);
    let signed = if cfg.identities.is_signed() {
        "true"
    } else {
        "false"
    };
    TEMPLATE
        .replace("__SWITCHBOARD_RTC_BASE__", &base)
        .replace("__SWITCHBOARD_RTC_SIGNED__", signed)
}

/// `GET {prefix}/call`.
pub(crate) fn response(cfg: &RtcConfig) -> Response {
    let mut r = Response::new(Body::from(render(cfg)));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtc::identity::Identities;

    #[test]
    fn the_page_is_self_contained_and_filled_in() {
        let cfg = RtcConfig {
            prefix: "/rtc</script>".into(),
            ..RtcConfig::default()
        };
        let page = render(&cfg);
        assert!(page.contains(r#"const BASE = "/rtc\u003c/script\u003e";"#));
        assert!(page.contains("const SIGNED = false;"));
        assert!(!page.contains("__SWITCHBOARD"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no CDN"
        );
        for needle in [
            "video-offer",
            "video-answer",
            "ice-candidate",
            "/v1/connect",
            "/v1/register",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
        let signed = RtcConfig {
            identities: Identities::signed(b"0123456789abcdef").unwrap(),
            ..RtcConfig::default()
        };
        assert!(render(&signed).contains("const SIGNED = true;"));
    }
}
