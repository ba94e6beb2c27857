//! The talk service (nextcloud-spreed-signaling), first slice: welcome,
//! hello v1 through a stand-in Nextcloud, the spec's errors, hello timeout,
//! rooms with join/leave events, message relay, bye, resume, duplicate
//! Nextcloud sessions, and the signed server API.

use serde_json::{Value, json};
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Event};

use crate::harness::start;
use crate::talk_common::{Nextcloud, SECRET, TalkClient, config, config_with, sign};

fn error_code(v: &Value) -> &str {
    assert_eq!(v["type"], "error", "{v}");
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn welcome_comes_first_with_the_features_also_in_the_upgrade_header() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let (mut c, headers) = ws::try_connect_with_response(h.addr, "/talk/spreed", &[])
        .await
        .expect("upgrade");
    let welcome: Value = serde_json::from_str(&c.text().await).unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert!(welcome.get("id").is_none());
    let features: Vec<&str> = welcome["welcome"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(features.contains(&"welcome"), "{features:?}");
    assert!(!features.contains(&"mcu"), "never mcu");
    let mut sorted = features.clone();
    sorted.sort_unstable();
    assert_eq!(features, sorted, "sorted");
    let header = headers
        .iter()
        .find(|(k, _)| k == "x-spreed-signaling-features")
        .map(|(_, v)| v.clone())
        .expect("X-Spreed-Signaling-Features on the 101");
    assert_eq!(header, features.join(", "));

    let api = http::get(h.addr, "/talk/api/v1/welcome").await;
    assert_eq!(api.status, 200);
    assert_eq!(
        api.header("x-spreed-signaling-features"),
        Some(header.as_str())
    );
    let body: Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(body["nextcloud-spreed-signaling"], "Welcome");
    assert!(body["version"].is_string());
    h.shutdown().await;
}

#[tokio::test]
async fn hello_v1_is_authenticated_by_the_backend_with_a_valid_checksum() {
    let mut nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    let reply = c.hello(&nc, "alice").await;
    assert_eq!(reply["id"], "h");
    assert_eq!(reply["type"], "hello", "{reply}");
    let hello = &reply["hello"];
    assert_eq!(hello["version"], "1.0");
    assert_eq!(hello["userid"], "alice");
    let sid = hello["sessionid"].as_str().unwrap();
    let rid = hello["resumeid"].as_str().unwrap();
    assert!(sid.len() >= 32 && rid.len() >= 32 && sid != rid);
    // The Talk web client rebuilds its feature map from hello.server.features.
    assert!(
        hello["server"]["features"]
            .as_array()
            .unwrap()
            .contains(&json!("welcome"))
    );
    let auth = nc.request().await;
    assert_eq!(auth["type"], "auth");
    assert_eq!(auth["auth"]["version"], "1.0");
    assert_eq!(auth["auth"]["params"]["userid"], "alice");
    assert_eq!(nc.rejected(), 0, "every request carried a valid checksum");
    h.shutdown().await;
}

#[tokio::test]
async fn a_guest_has_an_empty_userid() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    c.send(
        json!({"id": "g", "type": "hello", "hello": {"version": "1.0",
        "auth": {"url": nc.auth_url(), "params": {}}}}),
    )
    .await;
    let reply = c.recv().await;
    assert_eq!(reply["type"], "hello", "{reply}");
    assert_eq!(
        reply["hello"]["userid"], "",
        "always present, empty for guests"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_specs_error_codes() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    c.ws.send_text("this is not json").await;
    assert_eq!(error_code(&c.recv().await), "invalid_format");
    c.ws.send_binary(b"{}").await;
    assert_eq!(error_code(&c.recv().await), "invalid_format");
    c.send(json!({"id": "1", "type": "room", "room": {"roomid": "r"}}))
        .await;
    let e = c.recv().await;
    assert_eq!(error_code(&e), "hello_expected");
    assert_eq!(e["id"], "1");
    assert_eq!(e["error"]["message"], "Expected Hello request.");
    c.send(json!({"id": "2", "type": "hello", "hello": {"version": "3.0"}}))
        .await;
    assert_eq!(error_code(&c.recv().await), "invalid_hello_version");
    c.send(
        json!({"id": "3", "type": "hello", "hello": {"version": "1.0",
        "auth": {"type": "robot", "url": nc.auth_url(), "params": {"a": 1}}}}),
    )
    .await;
    assert_eq!(error_code(&c.recv().await), "invalid_client_type");
    c.send(json!({"id": "4", "type": "hello", "hello": {"version": "1.0",
        "auth": {"url": "https://elsewhere.example.com/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
                 "params": {"userid": "a", "ticket": "t"}}}}))
        .await;
    let e = c.recv().await;
    assert_eq!(error_code(&e), "invalid_backend");
    assert_eq!(e["error"]["message"], "The backend URL is not supported.");
    // Nextcloud's own error is passed through.
    c.send(
        json!({"id": "5", "type": "hello", "hello": {"version": "1.0",
        "auth": {"url": nc.auth_url(), "params": {"userid": "alice", "ticket": "forged"}}}}),
    )
    .await;
    let e = c.recv().await;
    assert_eq!(error_code(&e), "invalid_ticket");
    assert_eq!(e["id"], "5");
    c.send(json!({"id": "6", "type": "hello", "hello": {"version": "1.0", "resumeid": "nothing-like-this"}}))
        .await;
    let e = c.recv().await;
    assert_eq!(error_code(&e), "no_such_session");
    assert_eq!(
        e["error"]["message"],
        "The session to resume does not exist."
    );
    // The connection survived all of it.
    let ok = c.hello(&nc, "alice").await;
    assert_eq!(ok["type"], "hello", "{ok}");
    h.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_nextcloud_is_an_internal_error_naming_the_cause() {
    // A port nothing listens on: bind, learn it, close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let cfg = crate::harness::config(|c| {
        c.talk.enabled = true;
        c.talk.backend_timeout_secs = 2;
        c.talk.backends = vec![switchboard::config::TalkBackendSection {
            id: "gone".into(),
            urls: vec![format!("http://{addr}/")],
            secret: SECRET.into(),
        }];
    });
    let h = start(cfg).await;
    let mut c = TalkClient::connect(h.addr).await;
    c.send(
        json!({"id": "1", "type": "hello", "hello": {"version": "1.0",
        "auth": {"url": format!("http://{addr}/"), "params": {"userid": "a", "ticket": "t"}}}}),
    )
    .await;
    let e = c.recv().await;
    assert_eq!(error_code(&e), "internal_error");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains(&addr.to_string()), "{message}");
    h.shutdown().await;
}

#[tokio::test]
async fn no_hello_in_time_is_a_bye_and_a_close() {
    let nc = Nextcloud::start().await;
    let h = start(config_with(&nc, |c| c.talk.hello_timeout_secs = 1)).await;
    let mut c = TalkClient::connect(h.addr).await;
    assert_eq!(
        c.recv().await,
        json!({"type": "bye", "bye": {"reason": "hello_timeout"}})
    );
    assert!(c.ws.until_closed().await.is_some());
    // An authenticated connection is not timed out.
    let mut ok = TalkClient::user(h.addr, &nc, "bob").await;
    ok.ws.expect_silence(1500).await;
    h.shutdown().await;
}

#[tokio::test]
async fn joining_a_room_asks_nextcloud_and_announces_everybody() {
    let mut nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;

    let reply = alice.join("r1", "nc-alice").await;
    assert_eq!(
        reply,
        json!({"id": "r", "type": "room", "room": {"roomid": "r1", "properties": {"name": "Room r1", "type": 3}}})
    );
    let join = nc.room_request("").await;
    assert_eq!(
        join["room"],
        json!({"version": "1.0", "roomid": "r1", "userid": "alice", "sessionid": "nc-alice"})
    );
    let me = alice.recv().await;
    assert_eq!(me["event"]["target"], "room");
    assert_eq!(me["event"]["type"], "join");
    assert_eq!(me["event"]["join"][0]["sessionid"], alice.session.as_str());
    assert_eq!(me["event"]["join"][0]["userid"], "alice");
    assert_eq!(me["event"]["join"][0]["roomsessionid"], "nc-alice");
    assert_eq!(
        me["event"]["join"][0]["user"],
        json!({"displayname": "ALICE"})
    );

    assert_eq!(bob.join("r1", "nc-bob").await["room"]["roomid"], "r1");
    // As the original: first who is there, then the joiner itself.
    let present = bob.recv().await;
    let list = present["event"]["join"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sessionid"], alice.session.as_str());
    let bob_self = bob.recv().await;
    assert_eq!(
        bob_self["event"]["join"][0]["sessionid"],
        bob.session.as_str()
    );
    let seen_by_alice = alice.recv().await;
    assert_eq!(
        seen_by_alice["event"]["join"][0]["sessionid"],
        bob.session.as_str()
    );

    // The same room again.
    bob.send(
        json!({"id": "again", "type": "room", "room": {"roomid": "r1", "sessionid": "nc-bob"}}),
    )
    .await;
    let e = bob.recv().await;
    assert_eq!(error_code(&e), "already_joined");
    assert_eq!(e["error"]["details"]["room"]["roomid"], "r1");

    // Nextcloud refuses a room: its error is passed through.
    let mut carol = TalkClient::user(h.addr, &nc, "carol").await;
    let e = carol.join("no-such-room", "nc-carol").await;
    assert_eq!(error_code(&e), "no_such_room");
    assert_eq!(
        e["error"]["message"],
        "The user is not invited to this room."
    );

    // Leaving: a reply, a leave event to the others, a leave request to Nextcloud.
    bob.send(json!({"id": "out", "type": "room", "room": {"roomid": ""}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"id": "out", "type": "room", "room": {"roomid": ""}})
    );
    assert_eq!(
        alice.recv().await,
        json!({"type": "event", "event": {"target": "room", "type": "leave", "leave": [bob.session]}})
    );
    let leave = nc.room_request("leave").await;
    assert_eq!(
        leave["room"],
        json!({"version": "1.0", "roomid": "r1", "userid": "bob", "sessionid": "nc-bob", "action": "leave"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn messages_reach_sessions_users_and_rooms_but_never_the_sender() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    let mut bob2 = TalkClient::user(h.addr, &nc, "bob").await;

    let offer = json!({"to": bob.session, "type": "offer", "roomType": "video", "payload": {"type": "offer", "sdp": "v=0"}});
    alice
        .send(json!({"id": "m", "type": "message", "message": {
            "recipient": {"type": "session", "sessionid": bob.session}, "data": offer}}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "message", "message": {
            "sender": {"type": "session", "sessionid": alice.session, "userid": "alice"},
            "data": offer}})
    );
    // To a user: every session of that user.
    alice
        .send(json!({"type": "message", "message": {"recipient": {"type": "user", "userid": "bob"}, "data": {"n": 1}}}))
        .await;
    for c in [&mut bob, &mut bob2] {
        let m = c.recv().await;
        assert_eq!(m["message"]["sender"]["type"], "user");
        assert_eq!(m["message"]["data"], json!({"n": 1}));
    }
    // To the room: members only, not the sender.
    alice.join("r", "nc-a").await;
    let _ = alice.recv().await;
    bob.join("r", "nc-b").await;
    let _ = bob.recv().await;
    let _ = bob.recv().await;
    let _ = alice.recv().await;
    bob.send(
        json!({"type": "message", "message": {"recipient": {"type": "room"}, "data": "hi room"}}),
    )
    .await;
    let m = alice.recv().await;
    assert_eq!(m["message"]["sender"]["sessionid"], bob.session.as_str());
    assert_eq!(m["message"]["data"], "hi room");
    // Nothing reached the sender or the session outside the room.
    bob.ws.expect_silence(200).await;
    bob2.ws.expect_silence(200).await;
    // control needs the `control` permission, which the stand-in grants nobody.
    alice
        .send(json!({"type": "control", "control": {"recipient": {"type": "session", "sessionid": bob.session}, "data": {"action": "forceMute"}}}))
        .await;
    bob.ws.expect_silence(200).await;
    h.shutdown().await;
}

#[tokio::test]
async fn bye_ends_the_session_and_leaves_the_room() {
    let mut nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    alice.join("r", "nc-a").await;
    let _ = alice.recv().await;
    bob.join("r", "nc-b").await;
    let _ = bob.recv().await;
    let _ = bob.recv().await;
    let _ = alice.recv().await;
    bob.send(json!({"id": "9", "type": "bye", "bye": {}})).await;
    assert_eq!(bob.recv().await, json!({"id": "9", "type": "bye"}));
    assert!(bob.ws.until_closed().await.is_some());
    assert_eq!(
        alice.recv().await["event"]["leave"][0],
        bob.session.as_str()
    );
    assert_eq!(nc.room_request("leave").await["room"]["userid"], "bob");
    // The session is gone: its resume id is refused.
    let mut again = TalkClient::connect(h.addr).await;
    again
        .send(json!({"id": "3", "type": "hello", "hello": {"version": "1.0", "resumeid": bob.resume}}))
        .await;
    assert_eq!(error_code(&again.recv().await), "no_such_session");
    h.shutdown().await;
}

#[tokio::test]
async fn a_session_resumes_within_the_window_with_what_was_queued() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    // Alice's socket goes away (her session stays).
    alice.ws.close(1000, "").await;
    assert!(alice.ws.until_closed().await.is_some());
    for n in 1..=3 {
        bob.send(json!({"type": "message", "message": {
            "recipient": {"type": "session", "sessionid": alice.session}, "data": {"n": n}}}))
            .await;
    }
    let mut back = TalkClient::connect(h.addr).await;
    back.send(
        json!({"id": "r", "type": "hello", "hello": {"version": "1.0", "resumeid": alice.resume}}),
    )
    .await;
    let reply = back.recv().await;
    assert_eq!(reply["type"], "hello", "{reply}");
    assert_eq!(reply["hello"]["sessionid"], alice.session.as_str());
    assert_eq!(reply["hello"]["resumeid"], alice.resume.as_str());
    assert_eq!(reply["hello"]["userid"], "alice");
    for n in 1..=3 {
        assert_eq!(back.recv().await["message"]["data"]["n"], n);
    }
    // Resuming from a second socket takes the session over: the first gets a bye.
    let mut third = TalkClient::connect(h.addr).await;
    third
        .send(json!({"id": "t", "type": "hello", "hello": {"version": "1.0", "resumeid": alice.resume}}))
        .await;
    assert_eq!(
        third.recv().await["hello"]["sessionid"],
        alice.session.as_str()
    );
    assert_eq!(
        back.recv().await,
        json!({"type": "bye", "bye": {"reason": "session_resumed"}})
    );
    assert!(back.ws.until_closed().await.is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn a_session_not_resumed_in_time_ends_and_leaves_its_room() {
    let mut nc = Nextcloud::start().await;
    let h = start(config_with(&nc, |c| c.talk.resume_window_secs = 1)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    alice.join("r", "nc-a").await;
    let _ = alice.recv().await;
    bob.join("r", "nc-b").await;
    let _ = bob.recv().await;
    let _ = bob.recv().await;
    let _ = alice.recv().await;
    bob.ws.close(1000, "").await;
    assert!(bob.ws.until_closed().await.is_some());
    // Within the window nobody is told; after it, the room hears the leave.
    assert_eq!(
        alice.recv().await["event"]["leave"][0],
        bob.session.as_str()
    );
    assert_eq!(nc.room_request("leave").await["room"]["userid"], "bob");
    let mut late = TalkClient::connect(h.addr).await;
    late.send(
        json!({"id": "l", "type": "hello", "hello": {"version": "1.0", "resumeid": bob.resume}}),
    )
    .await;
    assert_eq!(error_code(&late.recv().await), "no_such_session");
    h.shutdown().await;
}

#[tokio::test]
async fn a_second_signaling_session_for_one_nextcloud_session_kicks_the_first() {
    let mut nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut first = TalkClient::user(h.addr, &nc, "alice").await;
    first.join("r", "nc-same").await;
    let _ = first.recv().await;
    let mut second = TalkClient::user(h.addr, &nc, "alice").await;
    assert_eq!(second.join("r", "nc-same").await["room"]["roomid"], "r");
    assert_eq!(
        first.recv().await,
        json!({"type": "bye", "bye": {"reason": "room_session_reconnected"}})
    );
    assert!(first.ws.until_closed().await.is_some());
    // The kicked session did not tell Nextcloud to leave: only joins were sent.
    let mut joins = 0;
    while joins < 2 {
        let r = nc.request().await;
        if r["type"] == "room" {
            assert!(r["room"].get("action").is_none(), "{r}");
            joins += 1;
        }
    }
    h.shutdown().await;
}

/// POSTs a signed room request as Nextcloud does.
async fn backend_post(
    addr: std::net::SocketAddr,
    nc: &Nextcloud,
    room: &str,
    body: &Value,
) -> http::Response {
    let body = body.to_string();
    let (random, checksum) = sign(SECRET, body.as_bytes());
    let backend = nc.url();
    http::request(
        addr,
        "POST",
        &format!("/talk/api/v1/room/{room}"),
        &[
            ("Content-Type", "application/json"),
            ("Spreed-Signaling-Random", &random),
            ("Spreed-Signaling-Checksum", &checksum),
            ("Spreed-Signaling-Backend", &backend),
        ],
        body.as_bytes(),
    )
    .await
}

async fn post_room(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response {
    http::request(addr, "POST", "/talk/api/v1/room/r", headers, body).await
}

#[tokio::test]
async fn the_server_api_refuses_what_the_original_refuses() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let body =
        json!({"type": "message", "message": {"data": {"chat": {"refresh": true}}}}).to_string();
    let body = body.as_bytes();
    let (random, checksum) = sign(SECRET, body);
    let backend = nc.url();
    let ct = ("Content-Type", "application/json");
    let rnd = ("Spreed-Signaling-Random", random.as_str());
    let sum = ("Spreed-Signaling-Checksum", checksum.as_str());
    let be = ("Spreed-Signaling-Backend", backend.as_str());
    let r = post_room(h.addr, &[ct, rnd, sum, be], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "{}");

    // No Content-Length: 411.
    let mut raw = format!(
        "POST /talk/api/v1/room/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/json\r\nSpreed-Signaling-Random: {random}\r\nSpreed-Signaling-Checksum: {checksum}\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    raw.extend_from_slice(body);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = http::raw(h.addr, &raw).await;
    assert_eq!(r.status, 411);
    assert_eq!(r.text(), "Length required\n");
    // Over 256 KiB: 413.
    let big = vec![b' '; 256 * 1024 + 1];
    let r = post_room(h.addr, &[ct, rnd, sum, be], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "Request entity too large\n");
    // Missing signature headers, an unknown backend, a bad checksum: 403.
    let r = post_room(h.addr, &[ct, be], body).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "Authentication check failed\n");
    let stranger = ("Spreed-Signaling-Backend", "https://unknown.example.com/");
    assert_eq!(
        post_room(h.addr, &[ct, rnd, sum, stranger], body)
            .await
            .status,
        403
    );
    let zeros = "0".repeat(64);
    let forged = ("Spreed-Signaling-Checksum", zeros.as_str());
    assert_eq!(
        post_room(h.addr, &[ct, rnd, forged, be], body).await.status,
        403
    );
    // A wrong content type, and a signed body that is not JSON: 400.
    let text = ("Content-Type", "text/plain");
    assert_eq!(
        post_room(h.addr, &[text, rnd, sum, be], body).await.status,
        400
    );
    let junk = b"not json";
    let (jr, jc) = sign(SECRET, junk);
    let r = post_room(
        h.addr,
        &[
            ct,
            ("Spreed-Signaling-Random", &jr),
            ("Spreed-Signaling-Checksum", &jc),
            be,
        ],
        junk,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Could not read body\n");
    // A type this server does not handle.
    let r = backend_post(h.addr, &nc, "r", &json!({"type": "teleport"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Unsupported request type: teleport\n");
    h.shutdown().await;
}

#[tokio::test]
async fn incall_participants_and_chat_reach_the_room_with_signaling_ids() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    alice.join("r", "nc-a").await;
    let _ = alice.recv().await;
    bob.join("r", "nc-b").await;
    let _ = bob.recv().await;
    let _ = bob.recv().await;
    let _ = alice.recv().await;

    let incall = json!({"type": "incall", "incall": {"incall": 7,
        "changed": [{"inCall": 7, "sessionId": "nc-b", "participantType": 3, "userId": "bob", "permissions": 254}],
        "users": [{"inCall": 7, "sessionId": "nc-b", "userId": "bob", "permissions": 254},
                  {"inCall": 0, "sessionId": "nc-a", "userId": "alice"},
                  {"inCall": 0, "sessionId": "nc-elsewhere", "userId": "carol"}]}});
    assert_eq!(backend_post(h.addr, &nc, "r", &incall).await.status, 200);
    let (alice_id, bob_id) = (alice.session.clone(), bob.session.clone());
    for c in [&mut alice, &mut bob] {
        let u = c.recv().await;
        assert_eq!(u["event"]["target"], "participants");
        assert_eq!(u["event"]["type"], "update");
        assert_eq!(u["event"]["update"]["roomid"], "r");
        let users = u["event"]["update"]["users"].as_array().unwrap();
        assert_eq!(users.len(), 2, "the unmapped session is left out: {u}");
        assert_eq!(users[0]["sessionId"], bob_id.as_str());
        assert!(users[0].get("permissions").is_none());
        assert_eq!(users[1]["sessionId"], alice_id.as_str());
    }
    // Bob is in the call now: `call` recipients reach him only.
    alice
        .send(json!({"type": "message", "message": {"recipient": {"type": "call"}, "data": "to the call"}}))
        .await;
    assert_eq!(bob.recv().await["message"]["data"], "to the call");
    bob.send(json!({"type": "message", "message": {"recipient": {"type": "call"}, "data": "x"}}))
        .await;
    alice.ws.expect_silence(200).await;

    let all = json!({"type": "incall", "incall": {"incall": 0, "all": true}});
    assert_eq!(backend_post(h.addr, &nc, "r", &all).await.status, 200);
    assert_eq!(
        alice.recv().await["event"]["update"],
        json!({"roomid": "r", "incall": 0, "all": true})
    );
    let _ = bob.recv().await;

    let chat = json!({"type": "message", "message": {"data": {"type": "chat", "chat": {"refresh": true}}}});
    assert_eq!(backend_post(h.addr, &nc, "r", &chat).await.status, 200);
    assert_eq!(
        alice.recv().await,
        json!({"type": "event", "event": {"target": "room", "type": "message",
            "message": {"roomid": "r", "data": {"type": "chat", "chat": {"refresh": true}}}}})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn invite_update_disinvite_and_delete_reach_users_and_members() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut alice = TalkClient::user(h.addr, &nc, "alice").await;
    let mut bob = TalkClient::user(h.addr, &nc, "bob").await;
    let props = json!({"name": "Planning", "type": 2});

    let invite = json!({"type": "invite", "invite": {"userids": ["bob"], "alluserids": ["alice", "bob"], "properties": props}});
    assert_eq!(backend_post(h.addr, &nc, "r", &invite).await.status, 200);
    assert_eq!(
        bob.recv().await,
        json!({"type": "event", "event": {"target": "roomlist", "type": "invite", "invite": {"roomid": "r", "properties": props}}})
    );
    let upd = alice.recv().await;
    assert_eq!(upd["event"]["type"], "update");
    assert_eq!(upd["event"]["update"]["roomid"], "r");

    alice.join("r", "nc-a").await;
    let _ = alice.recv().await;
    bob.join("r", "nc-b").await;
    let _ = bob.recv().await;
    let _ = bob.recv().await;
    let _ = alice.recv().await;

    let new_props = json!({"name": "Renamed", "type": 2});
    let update = json!({"type": "update", "update": {"userids": [], "properties": new_props}});
    assert_eq!(backend_post(h.addr, &nc, "r", &update).await.status, 200);
    assert_eq!(
        alice.recv().await,
        json!({"type": "room", "room": {"roomid": "r", "properties": new_props}})
    );
    let _ = bob.recv().await;

    // A disinvited member hears why and its session ends.
    let disinvite = json!({"type": "disinvite", "disinvite": {"userids": ["bob"], "alluserids": ["alice"], "properties": new_props}});
    assert_eq!(backend_post(h.addr, &nc, "r", &disinvite).await.status, 200);
    assert_eq!(
        bob.recv().await,
        json!({"type": "event", "event": {"target": "roomlist", "type": "disinvite", "disinvite": {"roomid": "r", "reason": "disinvited"}}})
    );
    assert!(bob.ws.until_closed().await.is_some());
    assert_eq!(
        alice.recv().await["event"]["leave"][0],
        bob.session.as_str()
    );
    let _ = alice.recv().await; // roomlist update to the remaining users

    // Deleting the room takes its members out.
    let delete = json!({"type": "delete", "delete": {"userids": ["alice"]}});
    assert_eq!(backend_post(h.addr, &nc, "r", &delete).await.status, 200);
    assert_eq!(
        alice.recv().await,
        json!({"type": "room", "room": {"roomid": ""}})
    );
    assert_eq!(
        alice.recv().await["event"]["disinvite"],
        json!({"roomid": "r", "reason": "deleted"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_too_big_message_closes_with_1009() {
    let nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    c.ws.send_text(&"x".repeat(64 * 1024 + 1)).await;
    match c.ws.next().await {
        Event::Close(code, _) => assert_eq!(code, Some(1009)),
        other => panic!("expected close 1009, got {other:?}"),
    }
    h.shutdown().await;
}
