//! Helpers for the meetings tests: a meeting with three members on a server
//! (native SQLite or pgeu-system's PostgreSQL), and a client that speaks the
//! meetings protocol's JSON.

use std::net::SocketAddr;

use serde_json::{Value, json};
use switchboard::Config;
use switchboard_testkit::pgeu::PgeuDb;
use switchboard_testkit::ws::{self, Client, Event};

use crate::harness::{self, Harness};

/// A member with a key to the fixture's meeting.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: &'static str,
    pub(crate) key: String,
    pub(crate) key_id: i64,
    pub(crate) member_id: i64,
}

/// A server and one pending meeting: `alice` (admin), `bob`, `carol`.
pub(crate) struct Fixture {
    pub(crate) h: Harness,
    pub(crate) meeting: i64,
    pub(crate) alice: Member,
    pub(crate) bob: Member,
    pub(crate) carol: Member,
    pub(crate) pgeu: Option<PgeuDb>,
}

fn key(c: char) -> String {
    std::iter::once(c)
        .chain(std::iter::repeat_n('x', 53))
        .collect()
}

/// Native mode on a private in-memory SQLite store.
pub(crate) async fn native(adjust: impl FnOnce(&mut Config)) -> Fixture {
    let h = harness::start(harness::config(|c| {
        c.rtc.enabled = false;
        c.pubsub.enabled = false;
        c.pairing.enabled = false;
        c.meetings.status_endpoint = true;
        adjust(c);
    }))
    .await;
    let store = h.app.store.clone().expect("native meetings open the store");
    let meeting = store.create_meeting("AGM").await.expect("meeting");
    let mut members = Vec::new();
    for (name, c) in [("Alice Admin", 'A'), ("Bob", 'B'), ("Carol", 'C')] {
        let member_id = store.create_member(name).await.expect("member");
        let key = key(c);
        let key_id = store
            .issue_key(meeting, member_id, &key, None)
            .await
            .expect("key");
        members.push(Member {
            name,
            key,
            key_id,
            member_id,
        });
    }
    store
        .add_admin(meeting, members[0].member_id)
        .await
        .expect("admin");
    let mut it = members.into_iter();
    Fixture {
        h,
        meeting,
        alice: it.next().unwrap(),
        bob: it.next().unwrap(),
        carol: it.next().unwrap(),
        pgeu: None,
    }
}

/// pgeu-system mode on a fresh PostgreSQL database with pgeu-system's tables;
/// `None` (after the loud skip) without PostgreSQL.
pub(crate) async fn pgeu(adjust: impl FnOnce(&mut Config)) -> Option<Fixture> {
    let db = PgeuDb::create().await?;
    let meeting = db.meeting("AGM", 0).await;
    let mut members = Vec::new();
    for (name, c) in [("Alice Admin", 'A'), ("Bob", 'B'), ("Carol", 'C')] {
        let member_id = db.member(name).await;
        let key = key(c);
        let key_id = db.key(meeting, member_id, &key, None).await;
        members.push(Member {
            name,
            key,
            key_id,
            member_id,
        });
    }
    db.admin(meeting, members[0].member_id).await;
    let url = db.url().to_owned();
    let h = harness::start(harness::config(|c| {
        c.rtc.enabled = false;
        c.pubsub.enabled = false;
        c.pairing.enabled = false;
        c.meetings.schema = "pgeu".into();
        c.meetings.pgeu_url = url;
        c.meetings.status_endpoint = true;
        adjust(c);
    }))
    .await;
    let mut it = members.into_iter();
    Some(Fixture {
        h,
        meeting,
        alice: it.next().unwrap(),
        bob: it.next().unwrap(),
        carol: it.next().unwrap(),
        pgeu: Some(db),
    })
}

impl Fixture {
    pub(crate) fn path(&self, m: &Member, first: i64) -> String {
        format!("/ws/meeting/{}/{}/{first}", self.meeting, m.key)
    }

    /// Connects `m` (highest seen id 0) without reading anything.
    pub(crate) async fn connect(&self, m: &Member) -> Meet {
        self.connect_from(m, 0).await
    }

    pub(crate) async fn connect_from(&self, m: &Member, first: i64) -> Meet {
        Meet(ws::connect(self.h.addr, &self.path(m, first)).await)
    }

    /// Connects `m` and reads its join sequence up to its own join line.
    pub(crate) async fn join(&self, m: &Member) -> Meet {
        let mut c = self.connect(m).await;
        c.joined(m.name).await;
        c
    }
}

/// A meetings client.
pub(crate) struct Meet(pub(crate) Client);

impl Meet {
    pub(crate) async fn connect(addr: SocketAddr, path: &str) -> Meet {
        Meet(ws::connect(addr, path).await)
    }

    /// The next message as JSON; panics on a close or a drop.
    pub(crate) async fn json(&mut self) -> Value {
        let t = self.0.text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// Skips messages until one of type `kind` (whose `pred` holds) arrives.
    pub(crate) async fn next_of(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        loop {
            match self.0.next().await {
                Event::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == kind && pred(&v) {
                        return v;
                    }
                    skipped.push(v);
                }
                other => panic!("waiting for {kind}, got {other:?} after {skipped:?}"),
            }
        }
    }

    /// The next chat/system line with this text (live `message`).
    pub(crate) async fn line(&mut self, text: &str) -> Value {
        self.next_of("message", |v| v["data"]["message"] == text)
            .await["data"]
            .clone()
    }

    /// The next `error`'s text.
    pub(crate) async fn error(&mut self) -> String {
        self.next_of("error", |_| true).await["msg"]
            .as_str()
            .expect("msg")
            .to_owned()
    }

    /// Reads `users`, `status`, `poll`, `messages` and the own join line.
    pub(crate) async fn joined(&mut self, name: &str) -> Joined {
        let users = self.next_of("users", |_| true).await;
        let status = self.json().await;
        assert_eq!(status["type"], "status", "{status}");
        let poll = self.json().await;
        assert_eq!(poll["type"], "poll", "{poll}");
        let messages = self.json().await;
        assert_eq!(messages["type"], "messages", "{messages}");
        let line = self
            .next_of("message", |v| {
                v["data"]["message"].as_str().is_some_and(|m| {
                    m.starts_with(&format!("Member {name} ")) && m.contains("joined")
                })
            })
            .await;
        Joined {
            users: users["data"]["users"].clone(),
            status: status["data"].clone(),
            poll: poll["data"].clone(),
            messages: messages["data"].clone(),
            line: line["data"].clone(),
        }
    }

    pub(crate) async fn send(&mut self, v: Value) {
        self.0.send_text(&v.to_string()).await;
    }

    pub(crate) async fn say(&mut self, text: &str) {
        self.send(json!({"type": "message", "message": text})).await;
    }

    /// Reads until the server ends the connection; asserts it sent no Close
    /// frame (the page reconnects only on 1006). Returns the `disconnect`
    /// text, if one came.
    pub(crate) async fn dropped(&mut self) -> Option<String> {
        let mut reason = None;
        loop {
            match self.0.next().await {
                Event::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == "disconnect" {
                        reason = v["data"]["message"].as_str().map(str::to_owned);
                    }
                }
                Event::Dropped => return reason,
                other => {
                    panic!("expected the connection to drop without a Close frame, got {other:?}")
                }
            }
        }
    }
}

/// What a member receives on joining.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) users: Value,
    pub(crate) status: Value,
    pub(crate) poll: Value,
    pub(crate) messages: Value,
    pub(crate) line: Value,
}
