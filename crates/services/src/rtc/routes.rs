//! The original's routing rules (Fiber's defaults), for the paths below the
//! service's prefix: paths match case-insensitively and after
//! percent-decoding, one trailing slash is tolerated, every GET route answers
//! HEAD too, an unknown path is `404 Cannot GET /x` and a known path with the
//! wrong method is `405 Method Not Allowed`.

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode};
use switchboard_edge::text_response;

/// The endpoints of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthcheck`.
    Healthcheck,
    /// `POST /v1/register`.
    Register,
    /// `GET /v1/user`.
    User,
    /// `GET /v1/connect` (the WebSocket).
    Connect,
    /// `GET /v1/kick-active-users`.
    Kick,
    /// `GET /call`: the demo call page (ours; off in the persona).
    CallPage,
}

/// What a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// An endpoint, with an acceptable method.
    Route(Route),
    /// No endpoint has this path.
    NotFound,
    /// An endpoint has this path, but not for this method.
    MethodNotAllowed,
}

/// Matches `method` and `path` (relative to the prefix, still percent-encoded).
pub fn route(method: &Method, path: &str, call_page: bool) -> Matched {
    let path = normalize(path);
    let (found, wants) = match path.as_str() {
        "/healthcheck" => (Route::Healthcheck, Method::GET),
        "/v1/register" => (Route::Register, Method::POST),
        "/v1/user" => (Route::User, Method::GET),
        "/v1/connect" => (Route::Connect, Method::GET),
        "/v1/kick-active-users" => (Route::Kick, Method::GET),
        "/call" if call_page => (Route::CallPage, Method::GET),
        _ => return Matched::NotFound,
    };
    let head_for_get = wants == Method::GET && method == Method::HEAD;
    if *method == wants || head_for_get {
        Matched::Route(found)
    } else {
        Matched::MethodNotAllowed
    }
}

/// Percent-decoded (lossily), ASCII-lowercased, with a leading `/` and
/// without one trailing `/`.
fn normalize(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut p = decoded.to_ascii_lowercase();
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    if p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    p
}

/// Fiber's 404: `Cannot METHOD /path`, the path HTML-escaped.
pub fn not_found(method: &Method, full_path: &str) -> Response {
    let mut text = format!("Cannot {method} ");
    for c in full_path.chars() {
        match c {
            '&' => text.push_str("&amp;"),
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '"' => text.push_str("&#34;"),
            '\'' => text.push_str("&#39;"),
            c => text.push(c),
        }
    }
    text_response(StatusCode::NOT_FOUND, text)
}

/// Fiber's 405.
pub fn method_not_allowed() -> Response {
    text_response::<Body>(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        use self::Route as R;
        use Matched::{MethodNotAllowed, NotFound};
        let r = Matched::Route;
        let cases: &[(Method, &str, Matched)] = &[
            (Method::GET, "/healthcheck", r(R::Healthcheck)),
            (Method::HEAD, "/healthcheck", r(R::Healthcheck)),
            (Method::POST, "/v1/register", r(R::Register)),
            (Method::POST, "/V1/REGISTER/", r(R::Register)),
            (Method::POST, "/v1/%72egister", r(R::Register)),
            (Method::GET, "/v1/register", MethodNotAllowed),
            (Method::HEAD, "/v1/register", MethodNotAllowed),
            (Method::GET, "/v1/User", r(R::User)),
            (Method::DELETE, "/v1/user", MethodNotAllowed),
            (Method::GET, "/v1/connect/", r(R::Connect)),
            (Method::GET, "/v1/kick-active-users", r(R::Kick)),
            (Method::POST, "/v1/kick-active-users", MethodNotAllowed),
            (Method::GET, "/call", r(R::CallPage)),
            (Method::GET, "/v1/connect//", NotFound),
            (Method::GET, "/x", NotFound),
            (Method::GET, "/", NotFound),
            (Method::GET, "", NotFound),
            (Method::POST, "/v1", NotFound),
        ];
        for (m, p, want) in cases {
            assert_eq!(route(m, p, true), *want, "{m} {p}");
        }
        assert_eq!(route(&Method::GET, "/call", false), NotFound);
    }
}
