//! Side by side with the original: Debian's nextcloud-spreed-signaling-server
//! (0.4.1) runs as a child on a loopback port with its own config and the
//! in-process NATS (`:loopback:`), against the same stand-in Nextcloud as
//! Switchboard. The same scripted conversation runs against both and the
//! message shapes are compared (ids and other free text masked).

use std::net::SocketAddr;
use std::process::Stdio;

use serde_json::{Value, json};
use switchboard_testkit::deps::require_command;
use switchboard_testkit::ws;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::harness::start;
use crate::talk_common::{Nextcloud, SECRET, config};

/// The original, killed on drop.
struct Original {
    addr: SocketAddr,
    _child: tokio::process::Child,
    _dir: switchboard_testkit::process::TempDir,
}

async fn start_original(bin: &std::path::Path, nc: &Nextcloud) -> Original {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = switchboard_testkit::process::TempDir::new("talk-oracle");
    let conf = dir.write(
        "server.conf",
        &format!(
            "[http]\nlisten = 127.0.0.1:{port}\n\
             [sessions]\nhashkey = 0123456789abcdef0123456789abcdef\nblockkey = 0123456789abcdef\n\
             [backend]\nbackends = nc\nallowall = false\ntimeout = 10\n\
             [nc]\nurl = http://{}\nsecret = {SECRET}\n\
             [nats]\nurl = :loopback:\n",
            nc.addr
        ),
    );
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the original");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let listening = tokio::time::timeout(switchboard_testkit::WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let hit = line.contains("Listening on");
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(listening, Ok(true)),
        "the original did not start:\n{}",
        seen.join("\n")
    );
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Original {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _child: child,
        _dir: dir,
    }
}

/// The shape of a message: free strings masked, protocol words kept, and the
/// documented differences folded: `hello.server` (our version and features,
/// docs/compatibility.md talk #1, #2) and 0.4.1's `"bye":{"reason":""}`, which
/// the spec (v2.1.1) and Switchboard leave out.
fn shape(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(server) = v.pointer_mut("/hello/server") {
        *server = json!("<server>");
    }
    if v["type"] == "bye"
        && v["bye"] == json!({"reason": ""})
        && let Some(o) = v.as_object_mut()
    {
        o.remove("bye");
    }
    masked(&v)
}

/// Free strings masked, protocol words kept.
fn masked(v: &Value) -> Value {
    const KEEP: &[&str] = &[
        "type", "target", "code", "roomid", "userid", "reason", "version", "action",
    ];
    fn walk(key: Option<&str>, v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), walk(Some(k), v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| walk(key, v)).collect()),
            Value::String(s) if key.is_some_and(|k| KEEP.contains(&k)) => Value::String(s.clone()),
            Value::String(_) => json!("<s>"),
            other => other.clone(),
        }
    }
    walk(None, v)
}

struct Script {
    addr: SocketAddr,
    path: &'static str,
}

async fn connect(s: &Script) -> ws::Client {
    ws::connect(s.addr, s.path).await
}

/// The next message that is not a `welcome` (only newer originals, and
/// Switchboard, greet with one; talk.rs checks ours).
async fn recv_skipping_welcome(c: &mut ws::Client) -> Value {
    loop {
        let v = recv(c).await;
        if v["type"] != "welcome" {
            return v;
        }
    }
}

async fn recv(c: &mut ws::Client) -> Value {
    let text = c.text().await;
    // Shown when the test fails: the conversation so far.
    eprintln!("got: {text}");
    serde_json::from_str(&text).expect("json")
}

/// Runs the conversation; returns every message each client got, shaped, per step.
async fn conversation(s: &Script, nc: &Nextcloud) -> Vec<(String, Vec<Value>)> {
    eprintln!("conversation with {}{}", s.addr, s.path);
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    let mut a = connect(s).await;
    let mut b = connect(s).await;
    let hello = |user: &str| {
        json!({"id": "1", "type": "hello", "hello": {"version": "1.0",
            "auth": {"url": nc.auth_url(), "params": {"userid": user, "ticket": format!("ticket-{user}")}}}})
        .to_string()
    };
    a.send_text(&hello("alice")).await;
    let ha = recv_skipping_welcome(&mut a).await;
    b.send_text(&hello("bob")).await;
    let hb = recv_skipping_welcome(&mut b).await;
    let bob_id = hb["hello"]["sessionid"].as_str().unwrap_or("").to_owned();
    out.push(("hello".into(), vec![shape(&ha), shape(&hb)]));

    a.send_text(
        &json!({"id": "2", "type": "room", "room": {"roomid": "r1", "sessionid": "nc-a"}})
            .to_string(),
    )
    .await;
    let ra = vec![shape(&recv(&mut a).await), shape(&recv(&mut a).await)];
    out.push(("alice joins".into(), ra));
    b.send_text(
        &json!({"id": "3", "type": "room", "room": {"roomid": "r1", "sessionid": "nc-b"}})
            .to_string(),
    )
    .await;
    let mut rb = vec![
        shape(&recv(&mut b).await),
        shape(&recv(&mut b).await),
        shape(&recv(&mut b).await),
        shape(&recv(&mut a).await),
    ];
    rb.sort_by_key(|v| v.to_string());
    out.push(("bob joins".into(), rb));

    a.send_text(
        &json!({"id": "4", "type": "message", "message": {
        "recipient": {"type": "session", "sessionid": bob_id},
        "data": {"type": "offer", "payload": {"sdp": "v=0"}}}})
        .to_string(),
    )
    .await;
    out.push(("message".into(), vec![shape(&recv(&mut b).await)]));

    b.send_text(&json!({"id": "5", "type": "room", "room": {"roomid": ""}}).to_string())
        .await;
    out.push((
        "bob leaves".into(),
        vec![shape(&recv(&mut b).await), shape(&recv(&mut a).await)],
    ));

    a.send_text(&json!({"id": "6", "type": "message", "message": {"recipient": {"type": "session"}, "data": {}}}).to_string())
        .await;
    out.push(("invalid message".into(), vec![shape(&recv(&mut a).await)]));

    a.send_text(&json!({"id": "7", "type": "bye", "bye": {}}).to_string())
        .await;
    out.push(("bye".into(), vec![shape(&recv(&mut a).await)]));
    out
}

#[tokio::test]
async fn the_same_conversation_has_the_originals_shapes() {
    let Some(bin) = require_command(
        "nextcloud-spreed-signaling-server",
        "bash scripts/ops-deps.sh (Debian package nextcloud-spreed-signaling)",
    ) else {
        return;
    };
    let nc = Nextcloud::start().await;
    let original = start_original(&bin, &nc).await;
    let h = start(config(&nc)).await;
    let theirs = conversation(
        &Script {
            addr: original.addr,
            path: "/spreed",
        },
        &nc,
    )
    .await;
    let ours = conversation(
        &Script {
            addr: h.addr,
            path: "/talk/spreed",
        },
        &nc,
    )
    .await;
    assert_eq!(theirs.len(), ours.len());
    for ((step, t), (_, o)) in theirs.iter().zip(&ours) {
        assert_eq!(
            o, t,
            "step {step:?}: ours (left) differs from the original's (right)"
        );
    }
    h.shutdown().await;
}
