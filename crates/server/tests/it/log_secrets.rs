//! No secret and no payload reaches the log: one `switchboard` process runs every service
//! (pubsub, pairing, rtc, meetings) at `debug` for every crate, the test drives each with
//! known secrets, message bodies, cookies and keys (and wrong ones, as an attacker would
//! show them), stops the server so its log is flushed, and looks for each of them in
//! everything it printed.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Client, Event};

use crate::support::ServerProcess;

const RTC_ADMIN_TOKEN: &str = "rtc-admin-TOKEN-4711-kick";
const RTC_COOKIE_SECRET: &str = "rtc-cookie-SECRET-0815-sign";
const MEETINGS_ADMIN_TOKEN: &str = "meetings-admin-TOKEN-1234-api";
const WRONG_TOKEN: &str = "WRONG-guessed-TOKEN-9999";

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
[ops]
enabled = false
[log]
level = "debug"
[store]
url = "sqlite::memory:"
[rtc]
register_per_minute = 0
kick_from_loopback = false
cookie_secret = "rtc-cookie-SECRET-0815-sign"
admin_token = "rtc-admin-TOKEN-4711-kick"
[meetings]
admin_token = "meetings-admin-TOKEN-1234-api"
admin_from_loopback = false
"#;

async fn text(c: &mut Client) -> String {
    match c.next().await {
        Event::Text(t) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn no_secret_or_payload_appears_in_debug_logs() {
    let server = ServerProcess::serve_config(CONFIG, 1);
    let addr = server.addr();
    // Everything that must never be printed.
    let mut secret: Vec<String> = [
        RTC_ADMIN_TOKEN,
        RTC_COOKIE_SECRET,
        MEETINGS_ADMIN_TOKEN,
        WRONG_TOKEN,
    ]
    .map(str::to_owned)
    .to_vec();

    // pubsub: a WebSocket message and a POST body.
    let ws_body = "pubsub-WS-BODY-secret-31337";
    let post_body = "pubsub-POST-BODY-secret-27182";
    secret.extend([ws_body.into(), post_body.into()]);
    let mut a = ws::connect(addr, "/pubsub/log-room").await;
    let mut b = ws::connect(addr, "/pubsub/log-room").await;
    a.send_text(ws_body).await;
    assert_eq!(text(&mut b).await, ws_body);
    let r = http::post(addr, "/pubsub/log-room", post_body.as_bytes()).await;
    assert!(r.status < 300, "POST: {} {}", r.status, r.text());
    assert_eq!(text(&mut b).await, post_body);

    // pairing: a relayed message between the two members of a channel.
    let pairing_body = "pairing-BODY-secret-16180";
    secret.push(pairing_body.into());
    let mut creator = ws::connect(addr, "/v1/ws/").await;
    let hello: Value = serde_json::from_str(&text(&mut creator).await).unwrap();
    let channel = hello["channelid"].as_str().expect("channelid").to_owned();
    let mut joiner = ws::connect(addr, &format!("/v1/ws/{channel}")).await;
    text(&mut joiner).await;
    creator.send_text(pairing_body).await;
    let relayed = text(&mut joiner).await;
    assert!(relayed.contains(pairing_body), "{relayed}");

    // rtc: two users (the names, their signed cookies), a signaling payload, a forged cookie,
    // a kick with a wrong token and one with the right token.
    let (alice, bob) = ("alice-RTC-NAME-2718", "bob-RTC-NAME-1414");
    let payload = "rtc-PAYLOAD-secret-57721";
    secret.extend([alice.into(), bob.into(), payload.into()]);
    let alice_cookie = crate::rtc_common::register(addr, "/rtc", alice).await;
    let bob_cookie = crate::rtc_common::register(addr, "/rtc", bob).await;
    for cookie in [&alice_cookie, &bob_cookie] {
        secret.push(cookie.split_once('=').unwrap().1.to_owned());
    }
    let mut alice_ws = crate::rtc_common::connect(addr, "/rtc", &alice_cookie).await;
    let mut bob_ws = crate::rtc_common::connect(addr, "/rtc", &bob_cookie).await;
    crate::rtc_common::send(&mut alice_ws, bob, "offer", &format!("\"{payload}\"")).await;
    let got = text(&mut bob_ws).await;
    assert!(got.contains(payload), "{got}");
    let forged = format!("user_username={alice}.Zm9yZ2VkLXNpZ25hdHVyZQ");
    secret.push("Zm9yZ2VkLXNpZ25hdHVyZQ".into());
    let r = http::request(addr, "GET", "/rtc/v1/user", &[("Cookie", &forged)], b"").await;
    assert!(r.status >= 400, "a forged cookie: {}", r.status);
    let wrong = format!("/rtc/v1/kick-active-users?token={WRONG_TOKEN}");
    let r = http::get(addr, &wrong).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let bearer = format!("Bearer {RTC_ADMIN_TOKEN}");
    let r = http::request(
        addr,
        "GET",
        "/rtc/v1/kick-active-users",
        &[("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(alice_ws.until_closed().await.is_some());

    // meetings: the setup API with a wrong and the right token, a key, a chat line, a
    // connection with a wrong key.
    let wrong_bearer = format!("Bearer {WRONG_TOKEN}");
    let r = http::request(
        addr,
        "POST",
        "/meeting/api/meetings",
        &[
            ("Authorization", &wrong_bearer),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    let api = |path: String, body: Value| {
        let auth = format!("Bearer {MEETINGS_ADMIN_TOKEN}");
        async move {
            let r = http::request(
                addr,
                "POST",
                &path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .await;
            assert_eq!(r.status, 201, "{path}: {}", r.text());
            serde_json::from_str::<Value>(&r.text()).unwrap()
        }
    };
    let meeting = api("/meeting/api/meetings".into(), json!({"name": "Board"})).await["id"]
        .as_i64()
        .unwrap();
    let member = api("/meeting/api/members".into(), json!({"name": "Dora"})).await["id"].clone();
    let issued = api(
        format!("/meeting/api/meetings/{meeting}/keys"),
        json!({"member": member}),
    )
    .await;
    let key = issued["key"].as_str().unwrap().to_owned();
    let line = "meetings-CHAT-LINE-secret-69314";
    secret.extend([key.clone(), line.into()]);
    let mut dora = ws::connect(addr, &format!("/ws/meeting/{meeting}/{key}/0")).await;
    dora.send_text(&json!({"type": "message", "message": line}).to_string())
        .await;
    loop {
        let t = text(&mut dora).await;
        if t.contains(line) {
            break;
        }
    }
    let wrong_key = "W".repeat(54);
    secret.push(wrong_key.clone());
    let mut refused = ws::try_connect(addr, &format!("/ws/meeting/{meeting}/{wrong_key}/0"), &[])
        .await
        .ok();
    if let Some(c) = refused.as_mut() {
        c.until_closed().await;
    }

    // Stop the server so every line is written, then look.
    drop((a, b, creator, joiner, bob_ws, dora));
    let mut server = server;
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "the server did not exit"
    );
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l.contains("DEBUG")),
        "the log is not at debug level: {lines:#?}"
    );
    // The rtc lines name a user by its tag only (rtc::identity::log_tag).
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rtc: user online") && l.contains("user=")),
        "no tagged rtc line: {lines:#?}"
    );
    for s in &secret {
        let hits: Vec<&String> = lines.iter().filter(|l| l.contains(s.as_str())).collect();
        assert!(hits.is_empty(), "{s:?} appears in the log: {hits:#?}");
    }
}
