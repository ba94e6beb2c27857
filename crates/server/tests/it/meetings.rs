//! The meetings service (pgeu-meetingserver drop-in) in native mode on SQLite:
//! one test per behaviour of the spec and per deliberate difference
//! (docs/compatibility.md). The same protocol against pgeu-system's tables on
//! PostgreSQL is in `meetings_pgeu.rs`.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::http;
use switchboard_testkit::raw::RawWs;

use crate::meetings_common::{Meet, native};

#[tokio::test]
async fn the_join_sequence_is_the_originals() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.connect(&f.bob).await;
    // Others hear of the joiner first.
    let add = alice.json().await;
    assert_eq!(add["type"], "adduser");
    assert_eq!(
        add["data"],
        json!({"name": "Bob", "color": "2", "id": f.bob.key_id})
    );
    // The joiner: users (everyone connected, itself included), status, poll, history.
    let j = bob.joined("Bob").await;
    let mut names: Vec<&str> = j
        .users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Alice Admin", "Bob"]);
    assert_eq!(j.status, json!({"isopen": false, "isfinished": false}));
    assert_eq!(j.poll, Value::Null);
    let history = j.messages.as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        history[0]["message"],
        "Member Alice Admin joined the meeting"
    );
    // Then the join line, to everyone including the joiner.
    assert_eq!(j.line["message"], "Member Bob joined the meeting");
    assert_eq!(j.line["from"], -1);
    assert_eq!(j.line["fromname"], "");
    assert!(j.line["id"].as_i64().unwrap() > history[0]["id"].as_i64().unwrap());
    let seen = alice.line("Member Bob joined the meeting").await;
    assert_eq!(seen["id"], j.line["id"]);
    f.h.shutdown().await;
}

#[tokio::test]
async fn chat_is_stored_then_broadcast_and_replayed_above_the_highest_seen_id() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.say("  first words \n").await;
    let live = bob.line("first words").await;
    assert_eq!(live["fromname"], "Alice Admin");
    assert_eq!(live["from"], f.alice.key_id, "from is the key id");
    assert_eq!(live["color"], "1");
    assert_eq!(live["time"].as_str().unwrap().len(), 8);
    assert_eq!(live["date"].as_str().unwrap().len(), 10);
    let mine = alice.line("first words").await;
    assert_eq!(mine["id"], live["id"], "one id for everyone");
    alice.say("   ").await; // empty after trimming: dropped
    alice.say("second").await;
    let second = bob.line("second").await;
    // The archive has it all, in order.
    let log =
        f.h.app
            .store
            .as_ref()
            .unwrap()
            .lines_after(f.meeting, 0)
            .await
            .unwrap();
    let texts: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    assert!(
        texts.ends_with(&["Member Bob joined the meeting", "first words", "second"]),
        "{texts:?}"
    );
    // A reconnect with the highest id it saw gets only what came after, with
    // `from` and `color` as they were live.
    drop(bob);
    alice.line("Member Bob left the meeting").await;
    let mut again = f.connect_from(&f.bob, live["id"].as_i64().unwrap()).await;
    let j = again.joined("Bob").await;
    let replay = j.messages.as_array().unwrap();
    assert_eq!(replay[0]["message"], "second");
    assert_eq!(replay[0]["id"], second["id"]);
    assert_eq!(replay[0]["from"], f.alice.key_id);
    assert_eq!(replay[0]["color"], "1");
    assert_eq!(replay[1]["message"], "Member Bob left the meeting");
    assert_eq!(replay[1]["from"], -1);
    assert_eq!(
        replay[1]["color"], "sys",
        "system lines look the same live and replayed"
    );
    assert_eq!(j.line["message"], "Member Bob re-joined the meeting");
    f.h.shutdown().await;
}

/// One writer per meeting: when another node takes the meeting over (here the
/// takeover's store write is made directly), this node's next line is refused by
/// the store, its sender told, nothing of it stored or sent, and the meeting's
/// members here are dropped without a Close frame so they reconnect; the
/// meeting then works again under a new writer.
#[tokio::test]
async fn a_meeting_taken_over_elsewhere_stores_nothing_more_here_and_drops_its_members() {
    let f = native(|_| {}).await;
    let store = f.h.app.store.clone().unwrap();
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.say("before").await;
    bob.line("before").await;
    store.take_writer(f.meeting).await.expect("another writer");
    alice.say("after the takeover").await;
    assert_eq!(
        alice.error().await,
        switchboard_services::meetings::texts::NOT_STORED
    );
    alice.dropped().await;
    let texts: Vec<String> = store
        .lines_after(f.meeting, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(texts.iter().any(|t| t == "before"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t == "after the takeover"),
        "{texts:?}"
    );
    // Bob never sees the refused line: the next thing he gets is the drop.
    match bob.0.next().await {
        switchboard_testkit::ws::Event::Dropped => {}
        other => panic!("expected bob to be dropped, got {other:?}"),
    }
    // Reconnecting starts the meeting again, as its writer.
    let mut alice = f.join(&f.alice).await;
    alice.say("back again").await;
    alice.line("back again").await;
    f.h.shutdown().await;
}

#[tokio::test]
async fn http_refusals_come_in_the_originals_order() {
    let f = native(|c| c.meetings.origin = "https://example.org".into()).await;
    let key = &f.alice.key;
    let ws_headers = |origin: Option<&'static str>| {
        let mut h = vec![
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        h
    };
    let get = |path: String, headers: Vec<(&'static str, &'static str)>| {
        let addr = f.h.addr;
        async move { http::request(addr, "GET", &path, &headers, b"").await }
    };
    // Unknown meeting: 404 before anything else, even with a bad origin.
    let r = get(
        format!("/ws/meeting/999/{key}/0"),
        ws_headers(Some("https://evil.example")),
    )
    .await;
    assert_eq!(r.status, 404);
    // A path that does not match the pattern.
    let r = get(
        format!("/ws/meeting/{}/short/0", f.meeting),
        ws_headers(None),
    )
    .await;
    assert_eq!(r.status, 404);
    // Origin: exact match only.
    let r = get(
        format!("/ws/meeting/{}/{key}/0", f.meeting),
        ws_headers(Some("https://example.org/")),
    )
    .await;
    assert_eq!(r.status, 403);
    // Not a WebSocket request: 400 (and no meeting actor is started for it).
    let r = get(format!("/ws/meeting/{}/{key}/0", f.meeting), vec![]).await;
    assert_eq!(r.status, 400);
    assert!(f.h.app.meetings.as_ref().unwrap().running().is_empty());
    // The exact origin, no origin, and trailing junk after the pattern are fine.
    let r = get(
        format!("/ws/meeting/{}/{key}/0/trailing/junk", f.meeting),
        ws_headers(Some("https://example.org")),
    )
    .await;
    assert_eq!(r.status, 101);
    let r = get(
        format!("/ws/meeting/{}/{key}/0", f.meeting),
        ws_headers(None),
    )
    .await;
    assert_eq!(r.status, 101);
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_gets_a_disconnect_message_after_the_upgrade() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let wrong = format!("/ws/meeting/{}/{}/0", f.meeting, "Z".repeat(54));
    let mut c = Meet::connect(f.h.addr, &wrong).await;
    let d = c.json().await;
    assert_eq!(d["type"], "disconnect");
    assert_eq!(
        d["data"]["message"],
        "You are not allowed to enter this meeting"
    );
    assert_eq!(d["data"]["id"], -1);
    assert_eq!(
        c.dropped().await,
        None,
        "then TCP ends without a Close frame"
    );
    // Fix: nobody hears a removeuser or a "left" line for it.
    alice.0.expect_silence(300).await;
    f.h.shutdown().await;
}

#[tokio::test]
async fn admin_commands_from_members_are_refused_and_do_nothing() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.line("Member Bob joined the meeting").await;
    for cmd in [
        json!({"type": "open"}),
        json!({"type": "finish"}),
        json!({"type": "newpoll", "question": "Q", "answers": ["a", "b"], "minutes": 1}),
        json!({"type": "newpoll"}),
        json!({"type": "abortpoll"}),
        json!({"type": "kick", "user": f.alice.key_id, "canrejoin": false}),
    ] {
        bob.send(cmd).await;
        assert_eq!(bob.error().await, "Permission denied");
    }
    bob.say("still here").await;
    bob.line("still here").await;
    alice.line("still here").await;
    // Nothing happened: still pending, no poll, nobody kicked.
    let store = f.h.app.store.as_ref().unwrap();
    assert_eq!(
        store.meeting_state(f.meeting).await.unwrap(),
        Some(switchboard_core::store::meetings::MeetingState::Pending)
    );
    assert_eq!(store.active_poll(f.meeting).await.unwrap(), None);
    f.h.shutdown().await;
}

#[tokio::test]
async fn open_and_finish_drive_the_state_machine_and_the_join_rules() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.send(json!({"type": "open"})).await;
    for text in [
        "This meeting is now open",
        "Anything sent from now on will be part of the permanent record",
    ] {
        bob.line(text).await;
    }
    let s = bob.next_of("status", |_| true).await;
    assert_eq!(s["data"], json!({"isopen": true, "isfinished": false}));
    alice.send(json!({"type": "open"})).await;
    assert_eq!(alice.error().await, "Meeting is already open");
    // Open: a member who never joined may not come in; one who did may rejoin.
    let mut carol = f.connect(&f.carol).await;
    assert_eq!(
        carol.dropped().await.as_deref(),
        Some("This meeting is already in progress and can no longer be joined.")
    );
    drop(bob);
    alice.line("Member Bob left the meeting").await;
    let mut bob = f.connect(&f.bob).await;
    bob.joined("Bob").await;
    alice.send(json!({"type": "finish"})).await;
    bob.line("This meeting is now finished").await;
    let s = bob.next_of("status", |_| true).await;
    assert_eq!(s["data"], json!({"isopen": false, "isfinished": true}));
    alice.send(json!({"type": "finish"})).await;
    assert_eq!(alice.error().await, "Meeting is already finished");
    // Finished: only admins get in.
    drop(bob);
    alice.line("Member Bob left the meeting").await;
    let mut bob = f.connect(&f.bob).await;
    assert_eq!(
        bob.dropped().await.as_deref(),
        Some("This meeting is already finished and can no longer be joined.")
    );
    // Re-opening says who did it.
    alice.send(json!({"type": "open"})).await;
    alice
        .line("This meeting is being re-opened by Alice Admin")
        .await;
    alice.line("This meeting is now open").await;
    let stored =
        f.h.app
            .store
            .as_ref()
            .unwrap()
            .meeting_state(f.meeting)
            .await
            .unwrap();
    assert_eq!(
        stored,
        Some(switchboard_core::store::meetings::MeetingState::Open)
    );
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_finished_meeting_closes_when_the_last_member_leaves() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    alice.send(json!({"type": "finish"})).await;
    alice.line("This meeting is now finished").await;
    drop(alice);
    let store = f.h.app.store.clone().unwrap();
    let meetings = f.h.app.meetings.clone().unwrap();
    f.h.eventually("the meeting closed", |_| meetings.running().is_empty())
        .await;
    assert_eq!(
        store.meeting_state(f.meeting).await.unwrap(),
        Some(switchboard_core::store::meetings::MeetingState::Closed)
    );
    let r = http::get(f.h.addr, &f.path(&f.alice, 0)).await;
    assert_eq!(r.status, 404, "a closed meeting is not found");
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_replaces_the_first_without_a_removeuser() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.line("Member Bob joined the meeting").await;
    let mut bob2 = f.connect(&f.bob).await;
    assert_eq!(
        bob.dropped().await.as_deref(),
        Some("You have connected from a different session. This session is disconnected.")
    );
    let j = bob2.joined("Bob").await;
    assert_eq!(j.line["message"], "Member Bob re-joined the meeting");
    // Alice: an adduser (the new session) and the re-join line, never a removeuser or "left".
    let mut seen = Vec::new();
    loop {
        let v = alice.json().await;
        let done = v["data"]["message"] == "Member Bob re-joined the meeting";
        seen.push(v);
        if done {
            break;
        }
    }
    assert!(seen.iter().all(|v| v["type"] != "removeuser"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|v| v["data"]["message"] != "Member Bob left the meeting"),
        "{seen:?}"
    );
    alice.0.expect_silence(200).await;
    bob2.say("I am the new one").await;
    alice.line("I am the new one").await;
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_poll_runs_votes_are_public_and_completes_when_everyone_present_voted() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.line("Member Bob joined the meeting").await;
    alice
        .send(json!({"type": "newpoll", "question": "Approve?", "answers": ["Yes", "No"], "minutes": 5}))
        .await;
    let p = bob.next_of("poll", |_| true).await;
    assert_eq!(
        p["data"],
        json!({"question": "Approve?", "answers": ["Yes", "No"], "tally": [0,0,0,0,0], "voted": null})
    );
    let p = alice.next_of("poll", |_| true).await;
    assert_eq!(p["data"]["voted"], json!([]), "admins see who voted");
    bob.line("A new poll has been posted for Approve?").await;
    // A second poll while one runs is refused, and the server lives on (the original crashed).
    alice
        .send(json!({"type": "newpoll", "question": "Other?", "answers": ["a"], "minutes": 1}))
        .await;
    assert_eq!(alice.error().await, "There is already an active poll");
    // Bad votes.
    bob.send(json!({"type": "vote", "question": "Other?", "vote": 0}))
        .await;
    assert_eq!(bob.error().await, "Vote for the wrong question received");
    bob.send(json!({"type": "vote", "question": "Approve?", "vote": 2}))
        .await;
    assert_eq!(bob.error().await, "Invalid vote");
    bob.send(json!({"type": "vote", "question": "Approve?", "vote": -1}))
        .await;
    assert_eq!(bob.error().await, "Invalid vote");
    bob.send(json!({"type": "vote", "question": "Approve?", "vote": 0}))
        .await;
    alice.line("Bob voted Yes").await;
    let p = alice.next_of("poll", |_| true).await;
    assert_eq!(p["data"]["tally"], json!([1, 0, 0, 0, 0]));
    assert_eq!(p["data"]["voted"], json!([f.bob.key_id]));
    bob.send(json!({"type": "vote", "question": "Approve?", "vote": 1}))
        .await;
    alice.line("Bob changed their vote to No").await;
    // Carol has a key but is not here: she does not hold the poll open.
    alice
        .send(json!({"type": "vote", "question": "Approve?", "vote": 0}))
        .await;
    for text in [
        "Alice Admin voted Yes",
        "All attendees have voted, poll has completed.",
        "Answer \"Yes\": 1 vote",
        "Answer \"No\": 1 vote",
    ] {
        bob.line(text).await;
    }
    let p = bob.next_of("poll", |_| true).await;
    assert_eq!(p["data"], Value::Null);
    bob.send(json!({"type": "vote", "question": "Approve?", "vote": 0}))
        .await;
    assert_eq!(bob.error().await, "There is no active poll");
    f.h.shutdown().await;
}

#[tokio::test]
async fn polls_can_be_aborted_and_a_zero_minute_poll_closes_at_once() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    alice.send(json!({"type": "abortpoll"})).await;
    assert_eq!(alice.error().await, "There is no active poll");
    alice
        .send(json!({"type": "newpoll", "question": "Q1", "answers": ["a", "b"], "minutes": 1}))
        .await;
    alice.next_of("poll", |v| !v["data"].is_null()).await;
    alice.send(json!({"type": "abortpoll"})).await;
    alice.line("The current poll has has been aborted").await;
    assert_eq!(alice.next_of("poll", |_| true).await["data"], Value::Null);
    alice
        .send(json!({"type": "newpoll", "question": "Q2", "answers": ["x"], "minutes": 0}))
        .await;
    alice.line("Poll has completed").await;
    alice.line("Answer \"x\": 0 votes").await;
    assert_eq!(alice.next_of("poll", |_| true).await["data"], Value::Null);
    // The field checks, with the original's texts.
    alice
        .send(json!({"type": "newpoll", "question": "Q", "answers": [1], "minutes": 1}))
        .await;
    assert_eq!(alice.error().await, "Invalid or unparsable answer");
    alice.send(json!({"type": "newpoll", "question": "Q", "answers": ["1","2","3","4","5","6"], "minutes": 1})).await;
    assert_eq!(alice.error().await, "Too many answers");
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_kick_disconnects_once_and_can_forbid_rejoining() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    let mut carol = f.join(&f.carol).await;
    alice.send(json!({"type": "open"})).await;
    carol.line("This meeting is now open").await;
    alice
        .send(json!({"type": "kick", "user": 999_999, "canrejoin": true}))
        .await;
    assert_eq!(alice.error().await, "User to kick not found");
    alice
        .send(json!({"type": "kick", "user": f.bob.key_id, "canrejoin": false}))
        .await;
    assert_eq!(
        bob.dropped().await.as_deref(),
        Some("You have been forcibly disconnected from this meeting")
    );
    carol
        .line("User Bob has been disconnected by Alice Admin")
        .await;
    let rm = carol.next_of("removeuser", |_| true).await;
    assert_eq!(rm["data"]["id"], f.bob.key_id);
    carol.say("after").await;
    let mut between = Vec::new();
    loop {
        let v = carol.json().await;
        if v["data"]["message"] == "after" {
            break;
        }
        between.push(v);
    }
    assert!(
        between.iter().all(|v| v["type"] != "removeuser"),
        "one removeuser per kick: {between:?}"
    );
    assert!(
        between
            .iter()
            .all(|v| v["data"]["message"] != "Member Bob left the meeting"),
        "{between:?}"
    );
    let mut bob = f.connect(&f.bob).await;
    assert_eq!(
        bob.dropped().await.as_deref(),
        Some("This meeting is already in progress and can no longer be joined.")
    );
    f.h.shutdown().await;
}

#[tokio::test]
async fn bad_frames_end_only_their_own_connection() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    // Binary JSON frames are accepted.
    alice
        .0
        .send_binary(br#"{"type":"message","message":"binary hello"}"#)
        .await;
    alice.line("binary hello").await;
    // Unknown types, missing types and malformed fields are ignored.
    let mut bob = f.join(&f.bob).await;
    for junk in [
        r#"{"type":"dance"}"#,
        r#"{"message":"x"}"#,
        r#"[1]"#,
        r#"{"type":"message","message":7}"#,
    ] {
        bob.0.send_text(junk).await;
    }
    bob.say("fine").await;
    bob.line("fine").await;
    // A message over 10240 bytes: close 1009.
    let big = format!(r#"{{"type":"message","message":"{}"}}"#, "x".repeat(11_000));
    bob.0.send_text(&big).await;
    assert_eq!(bob.0.until_closed().await.map(|c| c.0), Some(Some(1009)));
    alice.line("Member Bob left the meeting").await;
    // Not JSON: the connection drops without a Close frame; the meeting goes on.
    let mut carol = f.join(&f.carol).await;
    carol.0.send_text("{nope").await;
    assert_eq!(carol.dropped().await, None);
    alice.line("Member Carol left the meeting").await;
    alice.say("still running").await;
    alice.line("still running").await;
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_without_a_close_frame_after_the_pong_timeout() {
    let f = native(|c| {
        c.meetings.ping_interval_secs = 1;
        c.meetings.pong_timeout_secs = 2;
    })
    .await;
    // A raw client that never answers pings.
    let mut raw = RawWs::connect(f.h.addr, &f.path(&f.bob, 0)).await;
    let started = std::time::Instant::now();
    let close = raw.until_close().await;
    assert!(close.is_none(), "no Close frame: {close:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let store = f.h.app.store.clone().unwrap();
    let meeting = f.meeting;
    let mut left = false;
    for _ in 0..100 {
        let log = store.lines_after(meeting, 0).await.unwrap();
        if log.iter().any(|l| l.text == "Member Bob left the meeting") {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(left, "the drop counts as leaving");
    f.h.shutdown().await;
}

#[tokio::test]
async fn shutdown_drops_members_without_a_close_frame() {
    let f = native(|_| {}).await;
    let mut alice = f.join(&f.alice).await;
    let h = f.h;
    let stop = tokio::spawn(h.shutdown());
    assert_eq!(alice.dropped().await, None);
    stop.await.unwrap();
}

#[tokio::test]
async fn a_slow_member_is_dropped_instead_of_blocking_the_meeting() {
    let f = native(|c| {
        c.meetings.outbox_bytes = 64 * 1024;
        // Whichever comes first ends it: the outbox bound, or a write stuck this long.
        c.meetings.write_timeout_secs = 2;
    })
    .await;
    let mut alice = f.join(&f.alice).await;
    // Bob connects but never reads.
    let raw = RawWs::connect_with(f.h.addr, &f.path(&f.bob, 0), &[], Some(4096)).await;
    alice.line("Member Bob joined the meeting").await;
    // Alice keeps talking (and reading); Bob's kernel buffers fill, then his
    // outbox overflows and he is dropped, while Alice never waits.
    let long = "y".repeat(9000);
    let mut dropped = false;
    for i in 0..3000 {
        alice.say(&format!("{i} {long}")).await;
        loop {
            let v = alice.json().await;
            if v["data"]["message"] == "Member Bob left the meeting" {
                dropped = true;
            }
            if v["data"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("{i} ")))
            {
                break;
            }
        }
        if dropped {
            break;
        }
    }
    assert!(dropped, "the slow member was never dropped");
    // Counted as every slow consumer is, but ended the meetings way: no
    // Close frame (the page reconnects on 1006).
    let slow = || {
        let text = switchboard::ops::recorder()
            .expect("the recorder is ours in this test binary")
            .render();
        text.lines()
            .filter(|l| {
                l.starts_with("switchboard_slow_consumers_total{")
                    && l.contains("service=\"meetings\"")
            })
            .count()
    };
    f.h.eventually("the meetings slow consumer is counted", |_| slow() > 0)
        .await;
    let mut raw = raw;
    assert_eq!(raw.until_close().await, None, "no Close frame");
    f.h.shutdown().await;
}

#[tokio::test]
async fn the_status_report_has_the_originals_keys() {
    let f = native(|_| {}).await;
    let _alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    bob.0.close(1000, "").await;
    let r = http::get(f.h.addr, "/__meetingstatus").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    for k in ["upsince", "timestamp", "runtime", "meetings"] {
        assert!(v.get(k).is_some(), "{k}: {v}");
    }
    for k in ["goroutines", "cpus", "goversion"] {
        assert!(v["runtime"].get(k).is_some(), "{k}: {v}");
    }
    let m = &v["meetings"][0];
    assert_eq!(m["id"], f.meeting);
    assert_eq!(m["state"], "pending");
    assert!(
        m["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Alice Admin"
                && x["admin"] == true
                && x["uid"] == f.alice.member_id)
    );
    assert!(
        m["members"][0]["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    f.h.shutdown().await;
}

#[tokio::test]
async fn the_setup_api_creates_a_meeting_a_page_opens_and_the_log_exports() {
    let f = native(|_| {}).await;
    let post = |path: &'static str, body: Value| {
        let addr = f.h.addr;
        async move {
            let body = body.to_string();
            http::request(
                addr,
                "POST",
                path,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await
        }
    };
    let r = post("/meeting/api/meetings", json!({"name": "Board"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let meeting: Value = serde_json::from_str(&r.text()).unwrap();
    let id = meeting["id"].as_i64().unwrap();
    let r = post("/meeting/api/members", json!({"name": "Dora"})).await;
    let member: Value = serde_json::from_str(&r.text()).unwrap();
    let path = format!("/meeting/api/meetings/{id}/keys");
    let r = http::request(
        f.h.addr,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        json!({"member": member["id"]}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(key["key"].as_str().unwrap().len(), 54);
    let page = http::get(f.h.addr, key["page"].as_str().unwrap()).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/ws/meeting/"));
    let mut dora = Meet::connect(
        f.h.addr,
        &format!("/ws/meeting/{id}/{}/0", key["key"].as_str().unwrap()),
    )
    .await;
    dora.joined("Dora").await;
    dora.say("hello; \"board\"").await;
    dora.line("hello; \"board\"").await;
    let log = http::get(
        f.h.addr,
        &format!("/meeting/api/meetings/{id}/log?format=csv"),
    )
    .await;
    assert_eq!(log.status, 200);
    let text = log.text();
    assert!(text.starts_with("Time;Sender;Text\r\n"), "{text}");
    assert!(
        text.contains(";Dora;\"hello; \"\"board\"\"\"\r\n"),
        "{text}"
    );
    let json_log = http::get(f.h.addr, &format!("/meeting/api/meetings/{id}/log")).await;
    let rows: Value = serde_json::from_str(&json_log.text()).unwrap();
    assert_eq!(rows[1]["sender"], "Dora");
    let bad = post("/meeting/api/meetings", json!({"nom": "x"})).await;
    assert_eq!(bad.status, 400);
    f.h.shutdown().await;
}

#[tokio::test]
async fn the_setup_api_needs_the_token_when_loopback_is_not_trusted() {
    let f = native(|c| {
        c.meetings.admin_from_loopback = false;
        c.meetings.admin_token = "0123456789abcdef-token".into();
    })
    .await;
    let body = json!({"name": "X"}).to_string();
    let r = http::request(
        f.h.addr,
        "POST",
        "/meeting/api/meetings",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = http::request(
        f.h.addr,
        "POST",
        "/meeting/api/meetings",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer 0123456789abcdef-token"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    f.h.shutdown().await;
}

#[tokio::test]
async fn the_console_counts_running_meetings_and_connected_members() {
    let f = native(|_| {}).await;
    let counters = |v: &Value| -> (u64, u64) {
        let card = v["services"]
            .as_array()
            .expect("services")
            .iter()
            .find(|s| s["name"] == "meetings")
            .expect("a meetings card")
            .clone();
        let get = |key: &str| {
            card["counters"]
                .as_array()
                .expect("counters")
                .iter()
                .find(|c| c["key"] == key)
                .and_then(|c| c["value"].as_u64())
                .expect("a counter")
        };
        (get("meetings"), get("members"))
    };
    let stats = || async {
        let r = http::get(f.h.addr, "/api/stats").await;
        assert_eq!(r.status, 200);
        serde_json::from_slice::<Value>(&r.body).expect("JSON")
    };
    assert_eq!(
        counters(&stats().await),
        (0, 0),
        "nothing runs before a member comes"
    );
    let _alice = f.join(&f.alice).await;
    let _bob = f.join(&f.bob).await;
    assert_eq!(counters(&stats().await), (1, 2));
    let page = http::get(f.h.addr, "/").await;
    assert!(
        page.text().contains("/ws/meeting/"),
        "the card names the endpoint"
    );
}

/// A proxy on this host that is not in `server.trusted_proxies` connects from loopback but
/// forwards remote clients: they must not get the loopback privilege.
#[tokio::test]
async fn the_setup_api_refuses_loopback_forwarding_a_remote_client() {
    let post = |addr, headers: Vec<(&'static str, &'static str)>| async move {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend(headers);
        let body = json!({"name": "X"}).to_string();
        http::request(addr, "POST", "/meeting/api/meetings", &all, body.as_bytes())
            .await
            .status
    };
    let f = native(|_| {}).await;
    assert_eq!(post(f.h.addr, vec![]).await, 201);
    let remote = vec![("X-Forwarded-For", "192.0.2.7")];
    assert_eq!(post(f.h.addr, remote.clone()).await, 403);
    f.h.shutdown().await;
    // Named as a proxy, loopback's forwarded client decides; without one, nobody is local.
    let f = native(|c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    assert_eq!(post(f.h.addr, remote).await, 403);
    assert_eq!(post(f.h.addr, vec![]).await, 403, "no forwarded client");
    f.h.shutdown().await;
}
