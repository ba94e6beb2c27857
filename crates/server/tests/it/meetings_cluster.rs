//! The meetings service on three real nodes sharing a test `nats-server` and a
//! fresh PostgreSQL database (native schema): one meeting with members on every
//! node behaves as on one node (issue 8, "On several nodes"), a member's second
//! connection on another node replaces the first, and when the node that owns
//! the meeting is killed another takes it over, open poll included.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Event};

use crate::cluster_support::{ClusterSpec, TestCluster};
use crate::meetings_common::Meet;

/// A poll "minute" in these tests.
const MINUTE_MS: u64 = 1500;

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 3,
        extra_toml: format!(
            "[rtc]\nenabled = false\n[pubsub]\nenabled = false\n[pairing]\nenabled = false\n\
             [meetings]\npoll_minute_ms = {MINUTE_MS}\n"
        ),
        ..Default::default()
    }
}

/// A member with a key, set up through the admin API.
#[derive(Debug, Clone)]
struct Member {
    name: &'static str,
    key: String,
    key_id: i64,
}

async fn api(addr: SocketAddr, path: &str, body: Value) -> Value {
    let r = http::request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    assert!(r.status == 201 || r.status == 204, "{path}: {}", r.text());
    serde_json::from_str(&r.text()).unwrap_or(Value::Null)
}

/// Meeting `AGM` with `Alice Admin` and `Carol Chair` (admins) and `Bob`.
async fn meeting(addr: SocketAddr) -> (i64, Member, Member, Member) {
    let id = api(addr, "/meeting/api/meetings", json!({"name": "AGM"})).await["id"]
        .as_i64()
        .expect("id");
    let mut out = Vec::new();
    for (name, admin) in [("Alice Admin", true), ("Bob", false), ("Carol Chair", true)] {
        let member = api(addr, "/meeting/api/members", json!({"name": name})).await["id"]
            .as_i64()
            .expect("member id");
        let k = api(
            addr,
            &format!("/meeting/api/meetings/{id}/keys"),
            json!({"member": member}),
        )
        .await;
        if admin {
            api(
                addr,
                &format!("/meeting/api/meetings/{id}/admins"),
                json!({"member": member}),
            )
            .await;
        }
        out.push(Member {
            name,
            key: k["key"].as_str().expect("key").to_owned(),
            key_id: k["id"].as_i64().expect("key id"),
        });
    }
    let mut it = out.into_iter();
    (
        id,
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    )
}

fn path(meeting: i64, m: &Member, first: i64) -> String {
    format!("/ws/meeting/{meeting}/{}/{first}", m.key)
}

/// The archive, as (id, text), oldest first.
async fn archive(addr: SocketAddr, meeting: i64) -> Vec<(i64, String)> {
    let r = http::get(addr, &format!("/meeting/api/meetings/{meeting}/log")).await;
    let rows: Vec<Value> = serde_json::from_str(&r.text()).expect("log JSON");
    rows.iter()
        .map(|l| {
            (
                l["id"].as_i64().unwrap(),
                l["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every live line a client reads, until `last` arrives; returns (id, text).
async fn lines_until(c: &mut Meet, last: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    loop {
        let v = c.next_of("message", |_| true).await;
        let id = v["data"]["id"].as_i64().unwrap();
        let text = v["data"]["message"].as_str().unwrap().to_owned();
        let done = text == last;
        out.push((id, text));
        if done {
            return out;
        }
    }
}

/// Every live line a client reads, until each of `last` arrived.
async fn lines_until_all(c: &mut Meet, last: &[&str]) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    while !last.iter().all(|l| out.iter().any(|(_, t)| t == l)) {
        let v = c.next_of("message", |_| true).await;
        out.push((
            v["data"]["id"].as_i64().unwrap(),
            v["data"]["message"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

fn names(users: &Value) -> Vec<String> {
    let mut v: Vec<String> = users
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_meeting_spans_three_nodes_chat_users_status_and_a_poll() {
    let Some(c) = TestCluster::start(spec()).await else {
        return;
    };
    let (id, alice, bob, carol) = meeting(c.addr(0)).await;
    // Alice's node (1) is the first to need the meeting: it owns it.
    let mut a = Meet::connect(c.addr(1), &path(id, &alice, 0)).await;
    a.joined(alice.name).await;
    let mut b = Meet::connect(c.addr(0), &path(id, &bob, 0)).await;
    assert_eq!(
        a.next_of("adduser", |_| true).await["data"]["id"],
        bob.key_id
    );
    let jb = b.joined(bob.name).await;
    assert_eq!(names(&jb.users), ["Alice Admin", "Bob"]);
    let mut cc = Meet::connect(c.addr(2), &path(id, &carol, 0)).await;
    for m in [&mut a, &mut b] {
        let add = m.next_of("adduser", |_| true).await;
        assert_eq!(add["data"]["id"], carol.key_id);
        assert_eq!(add["data"]["name"], "Carol Chair");
    }
    let jc = cc.joined(carol.name).await;
    assert_eq!(names(&jc.users), ["Alice Admin", "Bob", "Carol Chair"]);
    assert_eq!(
        jc.messages.as_array().unwrap().len(),
        2,
        "history: the two join lines before Carol's"
    );
    // Chat from every node, interleaved: one id order everywhere.
    for i in 0..10 {
        a.say(&format!("a{i}")).await;
        b.say(&format!("b{i}")).await;
        cc.say(&format!("c{i}")).await;
    }
    // Each sender's lines reach the owner in order, but senders on different
    // nodes race: each ends with its own marker.
    a.say("a-end").await;
    b.say("b-end").await;
    cc.say("c-end").await;
    let mut seen = Vec::new();
    for m in [&mut a, &mut b, &mut cc] {
        seen.push(lines_until_all(m, &["a-end", "b-end", "c-end"]).await);
    }
    // Everyone sees the same lines with the same ids after Carol's join line
    // (which Carol's own join sequence read already).
    let from = |v: &[(i64, String)]| match v
        .iter()
        .position(|(_, t)| t == "Member Carol Chair joined the meeting")
    {
        Some(at) => v[at + 1..].to_vec(),
        None => v.to_vec(),
    };
    assert_eq!(from(&seen[0]), from(&seen[1]), "node 1 and node 0");
    assert_eq!(from(&seen[0]), from(&seen[2]), "node 1 and node 2");
    let ids: Vec<i64> = seen[2].iter().map(|(i, _)| *i).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    for who in ["a", "b", "c"] {
        let own: Vec<&String> = seen[2]
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.len() == 2 && t.starts_with(who))
            .collect();
        let want: Vec<String> = (0..10).map(|i| format!("{who}{i}")).collect();
        assert_eq!(
            own,
            want.iter().collect::<Vec<_>>(),
            "{who}'s lines in order"
        );
    }
    // The archive is what everyone saw, in the same order.
    let log = archive(c.addr(2), id).await;
    assert!(log.ends_with(&from(&seen[1])), "archive {log:?}");

    // A status change by the admin on node 1 reaches every node.
    a.send(json!({"type": "open"})).await;
    for m in [&mut a, &mut b, &mut cc] {
        let s = m.next_of("status", |_| true).await;
        assert_eq!(s["data"], json!({"isopen": true, "isfinished": false}));
    }
    // A member's admin command is refused by its own node, as on one node.
    b.send(json!({"type": "finish"})).await;
    assert_eq!(b.error().await, "Permission denied");

    // A poll from the admin on node 2; votes from nodes 1 and 0; one tally.
    cc.send(
        json!({"type": "newpoll", "question": "Approve?", "answers": ["Yes", "No"], "minutes": 2}),
    )
    .await;
    for m in [&mut a, &mut b, &mut cc] {
        let p = m.next_of("poll", |v| !v["data"].is_null()).await;
        assert_eq!(p["data"]["question"], "Approve?");
    }
    a.send(json!({"type": "vote", "question": "Approve?", "vote": 0}))
        .await;
    for m in [&mut a, &mut b, &mut cc] {
        m.line("Alice Admin voted Yes").await;
    }
    b.send(json!({"type": "vote", "question": "Approve?", "vote": 1}))
        .await;
    for m in [&mut a, &mut b, &mut cc] {
        m.line("Bob voted No").await;
        let p = m
            .next_of("poll", |v| v["data"]["tally"] == json!([1, 1, 0, 0, 0]))
            .await;
        let voted = &p["data"]["voted"];
        assert!(
            voted.is_null() || voted.as_array().unwrap().len() == 2,
            "{p}"
        );
    }
    // Carol does not vote: the poll's timer ends it, once, cluster-wide.
    for m in [&mut a, &mut b, &mut cc] {
        m.line("Poll has completed").await;
        m.line("Answer \"Yes\": 1 vote").await;
        m.line("Answer \"No\": 1 vote").await;
        assert!(m.next_of("poll", |_| true).await["data"].is_null());
    }
    a.say("after the poll").await;
    for m in [&mut a, &mut b, &mut cc] {
        m.line("after the poll").await;
    }
    let log = archive(c.addr(0), id).await;
    let completed = log
        .iter()
        .filter(|(_, t)| t == "Poll has completed")
        .count();
    assert_eq!(completed, 1, "{log:?}");

    // The admin on the owner's node kicks the admin on node 2: Carol's node
    // ends her connection with the original's line, everyone hears it once.
    a.send(json!({"type": "kick", "user": carol.key_id, "canrejoin": true}))
        .await;
    assert_eq!(
        cc.dropped().await.as_deref(),
        Some("You have been forcibly disconnected from this meeting")
    );
    for m in [&mut a, &mut b] {
        m.line("User Carol Chair has been disconnected by Alice Admin")
            .await;
        let r = m.next_of("removeuser", |_| true).await;
        assert_eq!(r["data"]["id"], carol.key_id);
    }
    // Leaving on node 0 is heard on the owner's node, once.
    drop(b);
    let r = a.next_of("removeuser", |_| true).await;
    assert_eq!(r["data"]["id"], bob.key_id);
    a.line("Member Bob left the meeting").await;
    a.say("last").await;
    a.line("last").await;
    let log = archive(c.addr(0), id).await;
    let texts: Vec<&str> = log.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        texts.ends_with(&[
            "User Carol Chair has been disconnected by Alice Admin",
            "Member Bob left the meeting",
            "last"
        ]),
        "no left line for the kicked member: {texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_on_another_node_replaces_the_first() {
    let Some(c) = TestCluster::start(spec()).await else {
        return;
    };
    let (id, alice, bob, _carol) = meeting(c.addr(0)).await;
    let mut a = Meet::connect(c.addr(0), &path(id, &alice, 0)).await;
    a.joined(alice.name).await;
    // Bob first on node 1 (remote to the owner), then on node 2.
    let mut b1 = Meet::connect(c.addr(1), &path(id, &bob, 0)).await;
    b1.joined(bob.name).await;
    let mut b2 = Meet::connect(c.addr(2), &path(id, &bob, 0)).await;
    assert_eq!(
        b1.dropped().await.as_deref(),
        Some("You have connected from a different session. This session is disconnected.")
    );
    let j = b2.joined(bob.name).await;
    assert_eq!(j.line["message"], "Member Bob re-joined the meeting");
    assert_eq!(names(&j.users), ["Alice Admin", "Bob"]);
    // The replaced connection leaves no "left" line and no removeuser.
    a.say("still here").await;
    b2.line("still here").await;
    let log = archive(c.addr(1), id).await;
    assert!(
        !log.iter().any(|(_, t)| t == "Member Bob left the meeting"),
        "{log:?}"
    );
    // And then the owner's own member is replaced from another node.
    let mut a2 = Meet::connect(c.addr(2), &path(id, &alice, 0)).await;
    assert_eq!(
        a.dropped().await.as_deref(),
        Some("You have connected from a different session. This session is disconnected.")
    );
    a2.joined(alice.name).await;
    b2.line("Member Alice Admin re-joined the meeting").await;
}

/// Connects, trying again (as the page does, every two seconds; faster here)
/// while the meeting cannot be reached.
async fn reconnect(addr: SocketAddr, path: &str) -> Meet {
    for _ in 0..50 {
        match ws::try_connect(addr, path, &[]).await {
            Ok(c) => return Meet(c),
            Err(e) => {
                assert!(e.contains("503"), "unexpected refusal: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("the meeting could not be reached at {addr}{path}");
}

/// Reads until the connection drops without a Close frame; returns the ids of
/// the lines read meanwhile.
async fn ids_until_dropped(m: &mut Meet) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        match m.0.next().await {
            Event::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("JSON");
                assert_ne!(v["type"], "disconnect", "no disconnect line: {v}");
                if v["type"] == "message" {
                    ids.push(v["data"]["id"].as_i64().unwrap());
                }
            }
            Event::Dropped => return ids,
            other => panic!("expected a drop without a Close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_node_dies_another_takes_the_meeting_and_its_poll_over() {
    let Some(mut c) = TestCluster::start(spec()).await else {
        return;
    };
    let (id, alice, bob, carol) = meeting(c.addr(0)).await;
    // Node 1 owns the meeting; Bob is on node 0, Carol on node 2.
    let mut a = Meet::connect(c.addr(1), &path(id, &alice, 0)).await;
    a.joined(alice.name).await;
    let mut b = Meet::connect(c.addr(0), &path(id, &bob, 0)).await;
    let jb = b.joined(bob.name).await;
    let mut cc = Meet::connect(c.addr(2), &path(id, &carol, 0)).await;
    let jc = cc.joined(carol.name).await;
    let mut bob_ids: BTreeSet<i64> = jb
        .messages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    bob_ids.insert(jb.line["id"].as_i64().unwrap());
    let mut carol_high = jc.line["id"].as_i64().unwrap();
    // A poll that outlives its owner, with a vote from Bob.
    cc.send(json!({"type": "newpoll", "question": "Budget?", "answers": ["Yes", "No", "Abstain"], "minutes": 30}))
        .await;
    // (Commands from different nodes race to the owner: Bob votes once he sees the poll.)
    for l in lines_until(&mut b, "Member Carol Chair joined the meeting").await {
        bob_ids.insert(l.0);
    }
    b.next_of("poll", |v| !v["data"].is_null()).await;
    b.send(json!({"type": "vote", "question": "Budget?", "vote": 2}))
        .await;
    for i in 0..5 {
        b.say(&format!("before {i}")).await;
    }
    let before = lines_until(&mut b, "before 4").await;
    assert!(
        before.iter().any(|(_, t)| t == "Bob voted Abstain"),
        "{before:?}"
    );
    for l in before {
        bob_ids.insert(l.0);
    }
    carol_high = carol_high.max(lines_until(&mut cc, "before 4").await.last().unwrap().0);

    c.kill(1);
    // Bob's and Carol's nodes drop them (no disconnect line) once they see node 1 dead.
    bob_ids.extend(ids_until_dropped(&mut b).await);
    if let Some(h) = ids_until_dropped(&mut cc).await.into_iter().max() {
        carol_high = carol_high.max(h);
    }
    let bob_high = *bob_ids.iter().max().unwrap();

    // They come back with the highest id they saw; one node takes the meeting over.
    let mut b = reconnect(c.addr(0), &path(id, &bob, bob_high)).await;
    let jb = b.joined(bob.name).await;
    let replay: Vec<i64> = jb
        .messages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(
        replay.iter().all(|i| *i > bob_high),
        "{replay:?} > {bob_high}"
    );
    assert_eq!(jb.line["message"], "Member Bob re-joined the meeting");
    assert!(jb.line["id"].as_i64().unwrap() > bob_high);
    // The running poll came back from the database with Bob's vote.
    assert_eq!(jb.poll["question"], "Budget?");
    assert_eq!(jb.poll["tally"], json!([0, 0, 1, 0, 0]));
    bob_ids.extend(replay);
    bob_ids.insert(jb.line["id"].as_i64().unwrap());

    let mut cc = reconnect(c.addr(2), &path(id, &carol, carol_high)).await;
    let jc = cc.joined(carol.name).await;
    assert_eq!(jc.poll["question"], "Budget?");
    assert_eq!(
        jc.poll["voted"],
        json!([bob.key_id]),
        "admins see who voted"
    );
    assert_eq!(names(&jc.users), ["Bob", "Carol Chair"]);
    // Carol votes: everyone present has voted, so the poll ends, once.
    cc.send(json!({"type": "vote", "question": "Budget?", "vote": 0}))
        .await;
    let tail = lines_until(&mut b, "Answer \"Abstain\": 1 vote").await;
    let texts: Vec<&str> = tail.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        texts.ends_with(&[
            "Carol Chair voted Yes",
            "All attendees have voted, poll has completed.",
            "Answer \"Yes\": 1 vote",
            "Answer \"No\": 0 votes",
            "Answer \"Abstain\": 1 vote",
        ]),
        "{texts:?}"
    );
    bob_ids.extend(tail.iter().map(|(i, _)| *i));
    // Ids only increased, and Bob, who reconnected with his highest id, missed
    // no stored line from his first join on.
    let log = archive(c.addr(2), id).await;
    let first = *bob_ids.iter().min().unwrap();
    let missed: Vec<&(i64, String)> = log
        .iter()
        .filter(|(i, _)| *i >= first && !bob_ids.contains(i))
        .collect();
    assert!(missed.is_empty(), "missed {missed:?}");
    let all: Vec<i64> = log.iter().map(|(i, _)| *i).collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    let completed = log
        .iter()
        .filter(|(_, t)| t.contains("poll has completed") || t == "Poll has completed")
        .count();
    assert_eq!(completed, 1, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_a_meeting_cannot_be_claimed_and_members_get_503() {
    let Some(mut c) = TestCluster::start(ClusterSpec { nodes: 2, ..spec() }).await else {
        return;
    };
    let (id, alice, bob, _carol) = meeting(c.addr(0)).await;
    // Bob's node 0 owns the meeting.
    let mut b = Meet::connect(c.addr(0), &path(id, &bob, 0)).await;
    b.joined(bob.name).await;
    // A second meeting member on node 1, remote to the owner.
    let (id2, alice2, bob2, _) = meeting(c.addr(0)).await;
    let mut owner2 = Meet::connect(c.addr(0), &path(id2, &bob2, 0)).await;
    owner2.joined(bob2.name).await;
    let mut remote2 = Meet::connect(c.addr(1), &path(id2, &alice2, 0)).await;
    remote2.joined(alice2.name).await;
    c.nats.stop();
    // The remote member can no longer hear its owner: its node drops it (no
    // `disconnect` line, the page retries); the owner's own member stays.
    assert!(ids_until_dropped(&mut remote2).await.is_empty());
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let before = c
        .metric(1, "switchboard_http_errors_total", r#"reason="owner""#)
        .await;
    // Nobody can say which node owns the meeting: refused before the upgrade
    // (the page sees 1006 and tries again), never run on a node of its own.
    let r = http::request(c.addr(1), "GET", &path(id, &alice, 0), &upgrade, b"").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let after = c
        .metric(1, "switchboard_http_errors_total", r#"reason="owner""#)
        .await;
    assert_eq!(after, before + 1.0);
    // Once NATS is back the members get in, and the owner's member never left.
    c.nats.restart();
    c.wait_ready().await;
    let mut a = reconnect(c.addr(1), &path(id, &alice, 0)).await;
    let ja = a.joined(alice.name).await;
    assert_eq!(names(&ja.users), ["Alice Admin", "Bob"]);
    b.line("Member Alice Admin joined the meeting").await;
    let mut remote2 = reconnect(c.addr(1), &path(id2, &alice2, 0)).await;
    remote2.joined(alice2.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_shutting_down_hands_its_members_on() {
    let Some(c) = TestCluster::start(ClusterSpec { nodes: 2, ..spec() }).await else {
        return;
    };
    let (id, alice, bob, _carol) = meeting(c.addr(0)).await;
    let mut a = Meet::connect(c.addr(1), &path(id, &alice, 0)).await;
    a.joined(alice.name).await;
    let mut b = Meet::connect(c.addr(0), &path(id, &bob, 0)).await;
    let jb = b.joined(bob.name).await;
    let high = jb.line["id"].as_i64().unwrap();
    // SIGTERM on the owner's node: its own member and the member on node 0 are
    // dropped without a `disconnect` line (both pages reconnect)...
    c.node(1).signal("TERM");
    assert_eq!(a.dropped().await, None);
    assert!(ids_until_dropped(&mut b).await.is_empty());
    // ...and node 0 takes the meeting over for both.
    let mut b = reconnect(c.addr(0), &path(id, &bob, high)).await;
    let jb = b.joined(bob.name).await;
    assert_eq!(jb.line["message"], "Member Bob re-joined the meeting");
    let mut a = reconnect(c.addr(0), &path(id, &alice, high)).await;
    a.joined(alice.name).await;
    b.line("Member Alice Admin re-joined the meeting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_node_that_dies_leave_the_meeting() {
    let Some(mut c) = TestCluster::start(ClusterSpec { nodes: 2, ..spec() }).await else {
        return;
    };
    let (id, alice, bob, _carol) = meeting(c.addr(0)).await;
    let mut a = Meet::connect(c.addr(0), &path(id, &alice, 0)).await;
    a.joined(alice.name).await;
    let mut b = Meet::connect(c.addr(1), &path(id, &bob, 0)).await;
    b.joined(bob.name).await;
    a.line("Member Bob joined the meeting").await;
    c.kill(1);
    // Once node 1 is declared dead, the owner lets its member go: once.
    let r = a.next_of("removeuser", |_| true).await;
    assert_eq!(r["data"]["id"], bob.key_id);
    a.line("Member Bob left the meeting").await;
    // The meeting goes on without it.
    a.send(json!({"type": "open"})).await;
    assert_eq!(a.next_of("status", |_| true).await["data"]["isopen"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgeu_systems_database_serves_one_meeting_over_two_nodes() {
    let Some(db) = switchboard_testkit::pgeu::PgeuDb::create().await else {
        return;
    };
    let meeting = db.meeting("AGM", 0).await;
    let mut members = Vec::new();
    for (name, c) in [("Alice Admin", 'A'), ("Bob", 'B')] {
        let member_id = db.member(name).await;
        let key: String = std::iter::once(c)
            .chain(std::iter::repeat_n('x', 53))
            .collect();
        let key_id = db.key(meeting, member_id, &key, None).await;
        if c == 'A' {
            db.admin(meeting, member_id).await;
        }
        members.push(Member { name, key, key_id });
    }
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        extra_toml: format!(
            "[rtc]\nenabled = false\n[pubsub]\nenabled = false\n[pairing]\nenabled = false\n\
             [meetings]\nschema = \"pgeu\"\npgeu_url = \"{}\"\nstate_poll_secs = 1\n",
            db.url()
        ),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let (alice, bob) = (&members[0], &members[1]);
    let mut a = Meet::connect(c.addr(0), &path(meeting, alice, 0)).await;
    a.joined(alice.name).await;
    let mut b = Meet::connect(c.addr(1), &path(meeting, bob, 0)).await;
    b.joined(bob.name).await;
    // pgeu-system opens the meeting in its backend (no NOTIFY): the owner's
    // poll of the state reaches the member on the other node too.
    db.set_state(meeting, 1).await;
    for m in [&mut a, &mut b] {
        let s = m.next_of("status", |_| true).await;
        assert_eq!(s["data"], json!({"isopen": true, "isfinished": false}));
    }
    for i in 0..5 {
        a.say(&format!("a{i}")).await;
        b.say(&format!("b{i}")).await;
    }
    a.say("a-end").await;
    b.say("b-end").await;
    let sa = lines_until_all(&mut a, &["a-end", "b-end"]).await;
    let sb = lines_until_all(&mut b, &["a-end", "b-end"]).await;
    assert_eq!(sa, sb, "one order on both nodes");
    // pgeu-system's own table holds exactly that, in id order, with its senders.
    let log = db.log(meeting).await;
    let stored: Vec<(i64, String)> = log.iter().map(|(i, _, t)| (*i, t.clone())).collect();
    assert!(stored.ends_with(&sa), "{stored:?} ends with {sa:?}");
    assert!(
        log.iter()
            .filter(|(_, _, t)| t.len() == 2)
            .all(|(_, sender, _)| sender.is_some())
    );
    // A poll from node 0, votes from both nodes: one result.
    a.send(json!({"type": "newpoll", "question": "Q?", "answers": ["x", "y"], "minutes": 10}))
        .await;
    for m in [&mut a, &mut b] {
        m.next_of("poll", |v| !v["data"].is_null()).await;
    }
    a.send(json!({"type": "vote", "question": "Q?", "vote": 0}))
        .await;
    b.send(json!({"type": "vote", "question": "Q?", "vote": 1}))
        .await;
    for m in [&mut a, &mut b] {
        m.line("All attendees have voted, poll has completed.")
            .await;
        m.line("Answer \"x\": 1 vote").await;
        m.line("Answer \"y\": 1 vote").await;
    }
}
