//! The test page served on `GET` of a channel: self-contained (no CDN), with the
//! channel path escaped for both HTML and JavaScript. A channel that keeps
//! history also gets a history panel: a second connection with `last=N` and
//! envelopes that shows offsets, can be dropped, and reconnects with `since`.

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

/// The history panel: its own connection, query built from the form.
const HISTORY_PANEL: &str = r##"<section id="history">
<h2>History</h2>
<p>This channel keeps its recent messages. Connect with <code>last</code> and envelopes, note the
offsets, disconnect, publish above, then reconnect with <code>since</code>: exactly the missed
messages arrive, or a <code>gap</code> says why they cannot. Wire format: docs/pubsub-history.md.</p>
<div class="row"><label>last <input id="h-last" type="number" min="0" max="10000" value="5"></label>
<button id="h-connect">Connect (last, envelopes)</button><button id="h-drop">Disconnect</button>
<button id="h-since">Reconnect with since</button></div>
<p>Position: <code id="h-pos">none</code> &middot; <span id="h-status">not connected</span></p>
<div id="h-log"></div>
</section>
<script>
"use strict";
(() => {
  const hlog = document.getElementById("h-log"), pos = document.getElementById("h-pos"), st = document.getElementById("h-status");
  const base = location.href.split(/[?#]/)[0].replace(/^http/, "ws");
  let hws = null, at = null;
  function hline(text, cls) {
    const d = document.createElement("div");
    d.textContent = text; if (cls) d.className = cls;
    hlog.appendChild(d); hlog.scrollTop = hlog.scrollHeight;
  }
  function open(query) {
    if (hws) hws.close();
    const ws = new WebSocket(base + "?" + query);
    hws = ws;
    st.textContent = "connecting (" + query + ")";
    ws.onopen = () => { st.textContent = "connected (" + query + ")"; };
    ws.onmessage = (e) => {
      if (e.data === "") return;
      const m = JSON.parse(e.data);
      if (m.control === "position") hline("position: epoch " + m.epoch + ", offset " + m.offset + ", " + m.replay + " replayed", "ctl");
      else if (m.control === "gap") hline("gap (" + m.reason + "): missed messages are gone; live from offset " + m.offset, "gap");
      else hline("#" + m.offset + "  " + m.data);
      at = { epoch: m.epoch, offset: m.offset };
      pos.textContent = at.epoch + " / " + at.offset;
    };
    ws.onclose = (e) => { if (hws === ws) { hws = null; st.textContent = "closed (" + e.code + (e.reason ? " " + e.reason : "") + ")"; } };
  }
  document.getElementById("h-connect").onclick = () => {
    const n = document.getElementById("h-last").value || "0";
    open("envelope=1&last=" + encodeURIComponent(n));
  };
  document.getElementById("h-drop").onclick = () => { if (hws) { const ws = hws; hws = null; ws.close(); st.textContent = "disconnected"; } };
  document.getElementById("h-since").onclick = () => {
    if (!at) { hline("connect first", "gap"); return; }
    open("since=" + at.offset + "&epoch=" + encodeURIComponent(at.epoch));
  };
})();
</script>
"##;

/// The test page for `channel`; `history` adds the history panel.
pub(crate) fn response(channel: &str, history: bool) -> Response {
    let title = html_escape(channel);
    let panel = if history { HISTORY_PANEL } else { "" };
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pubsub {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2rem;max-width:50rem;color:#222}}
#log{{border:1px solid #ccc;border-radius:4px;padding:.5rem;height:20rem;overflow:auto;font-family:ui-monospace,monospace;white-space:pre-wrap}}
#status{{font-weight:600}} form{{display:flex;gap:.5rem;margin-top:.5rem}} input{{flex:1;padding:.3rem}}
#h-log{{border:1px solid #ccc;border-radius:4px;padding:.5rem;height:12rem;overflow:auto;font-family:ui-monospace,monospace;white-space:pre-wrap}}
.row{{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}} #h-last{{width:5rem;flex:none}} .ctl{{color:#555}} .gap{{color:#a30}}
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
{panel}</body></html>
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
