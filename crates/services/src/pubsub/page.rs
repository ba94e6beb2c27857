//! The test page served on `GET` of a channel: self-contained (no CDN), with the
//! channel path escaped for both HTML and JavaScript.

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};

/// Escapes `s` for HTML text and attribute contexts.
pub(crate) fn html_escape(s: &str) -> String {
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

/// The test page for `channel`.
pub(crate) fn response(channel: &str) -> Response {
    let title = html_escape(channel);
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pubsub {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2rem;max-width:50rem;color:#222}}
#log{{border:1px solid #ccc;border-radius:4px;padding:.5rem;height:20rem;overflow:auto;font-family:ui-monospace,monospace;white-space:pre-wrap}}
#status{{font-weight:600}} form{{display:flex;gap:.5rem;margin-top:.5rem}} input{{flex:1;padding:.3rem}}
</style></head>
<body>
<h1>Channel <code>{title}</code></h1>
<p>Status: <span id="status">connecting</span>. Every message sent here, or POSTed to this URL, reaches every subscriber of the channel.</p>
<div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" placeholder="message"><button>Send</button></form>
<script>
"use strict";
const log = document.getElementById("log"), status = document.getElementById("status");
const url = location.href.split(/[?#]/)[0].replace(/^http/, "ws");
let ws;
function line(text) {{
  const d = document.createElement("div");
  d.textContent = new Date().toLocaleTimeString() + "  " + text;
  log.appendChild(d); log.scrollTop = log.scrollHeight;
}}
function connect() {{
  ws = new WebSocket(url);
  ws.onopen = () => {{ status.textContent = "subscribed"; }};
  ws.onmessage = (e) => {{ if (e.data !== "") line(e.data); }};
  ws.onclose = (e) => {{ status.textContent = "closed (" + e.code + (e.reason ? " " + e.reason : "") + "), reconnecting"; setTimeout(connect, 2000); }};
}}
connect();
setInterval(() => {{ if (ws.readyState === 1) ws.send(""); }}, 30000);
document.getElementById("f").onsubmit = (e) => {{
  e.preventDefault();
  const m = document.getElementById("msg");
  if (m.value !== "" && ws.readyState === 1) {{ ws.send(m.value); m.value = ""; }}
}};
</script>
</body></html>
"#
    );
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(header::CONTENT_TYPE, super::HTML);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(html_escape("/<xss>&\"'"), "/&lt;xss&gt;&amp;&quot;&#39;");
    }
}
