//! The meetings service against pgeu-system's own tables on a real PostgreSQL
//! (a fresh database per test, laid out as pgeu-system's Django migrations
//! make it): what pgeu-system's admin views read back, state changes made by
//! pgeu-system, restarts, and a database that fails mid-meeting.

use serde_json::{Value, json};

use crate::harness;
use crate::meetings_common::{Meet, pgeu};

#[tokio::test]
async fn pgeu_systems_tables_hold_what_its_views_read() {
    let Some(f) = pgeu(|_| {}).await else { return };
    let db = f.pgeu.as_ref().unwrap();
    assert!(!db.allow_rejoin(f.bob.key_id).await);
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    assert!(
        db.allow_rejoin(f.bob.key_id).await,
        "joining sets allowrejoin (the attendee report)"
    );
    alice.send(json!({"type": "open"})).await;
    bob.line("This meeting is now open").await;
    bob.say("Motion carried").await;
    alice.line("Motion carried").await;
    alice
        .send(json!({"type": "kick", "user": f.bob.key_id, "canrejoin": false}))
        .await;
    bob.dropped().await;
    alice
        .line("User Bob has been disconnected by Alice Admin")
        .await;
    alice.send(json!({"type": "finish"})).await;
    alice.line("This meeting is now finished").await;
    assert_eq!(db.state(f.meeting).await, 2);
    assert!(
        !db.allow_rejoin(f.bob.key_id).await,
        "a no-rejoin kick clears allowrejoin"
    );
    let log = db.log(f.meeting).await;
    let texts: Vec<&str> = log.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Member Alice Admin joined the meeting",
            "Member Bob joined the meeting",
            "This meeting is now open",
            "Anything sent from now on will be part of the permanent record",
            "Motion carried",
            "User Bob has been disconnected by Alice Admin",
            "This meeting is now finished",
        ]
    );
    // sender_id: the member's user id for chat, NULL for system lines.
    assert_eq!(log[4].1, Some(f.bob.member_id));
    assert_eq!(log[0].1, None);
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0));
    drop(alice);
    let meetings = f.h.app.meetings.clone().unwrap();
    f.h.eventually("the meeting closed", |_| meetings.running().is_empty())
        .await;
    assert_eq!(
        db.state(f.meeting).await,
        3,
        "closed when the last member left"
    );
    f.h.shutdown().await;
}

#[tokio::test]
async fn state_changes_made_by_pgeu_system_reach_the_meeting() {
    let Some(f) = pgeu(|c| c.meetings.state_poll_secs = 1).await else {
        return;
    };
    let db = f.pgeu.as_ref().unwrap();
    let mut bob = f.join(&f.bob).await;
    db.set_state(f.meeting, 1).await;
    let s = bob.next_of("status", |_| true).await;
    assert_eq!(s["data"], json!({"isopen": true, "isfinished": false}));
    // Carol never joined: the meeting is now in progress for her.
    let mut carol = f.connect(&f.carol).await;
    assert_eq!(
        carol.dropped().await.as_deref(),
        Some("This meeting is already in progress and can no longer be joined.")
    );
    db.set_state(f.meeting, 3).await;
    assert_eq!(
        bob.dropped().await.as_deref(),
        Some("This meeting is closed.")
    );
    let r = switchboard_testkit::http::get(f.h.addr, &f.path(&f.alice, 0)).await;
    assert_eq!(r.status, 404);
    f.h.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_the_running_poll_and_its_votes() {
    let Some(f) = pgeu(|_| {}).await else { return };
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    let _carol = f.join(&f.carol).await;
    alice
        .send(json!({"type": "newpoll", "question": "Budget?", "answers": ["Yes", "No", "Abstain"], "minutes": 10}))
        .await;
    bob.line("A new poll has been posted for Budget?").await;
    bob.send(json!({"type": "vote", "question": "Budget?", "vote": 2}))
        .await;
    alice.line("Bob voted Abstain").await;
    let cfg = f.h.app.config.as_ref().clone();
    let alice_path = f.path(&f.alice, 0);
    let (bob_key, _db) = (f.bob.key_id, f.pgeu);
    f.h.shutdown().await;
    assert_eq!(
        alice.dropped().await,
        None,
        "a restart drops, so pages reconnect"
    );

    let mut cfg = cfg;
    cfg.server.listen = vec!["127.0.0.1:0".into()];
    let h = harness::start(cfg).await;
    let mut alice = Meet::connect(h.addr, &alice_path).await;
    let j = alice.joined("Alice Admin").await;
    assert_eq!(j.poll["question"], "Budget?");
    assert_eq!(j.poll["tally"], json!([0, 0, 1, 0, 0]));
    assert_eq!(j.poll["voted"], json!([bob_key]));
    // The restored poll goes on. Alice is the only one present, so her vote
    // completes it, with Bob's stored vote in the results.
    alice
        .send(json!({"type": "vote", "question": "Budget?", "vote": 0}))
        .await;
    for text in [
        "Alice Admin voted Yes",
        "All attendees have voted, poll has completed.",
        "Answer \"Yes\": 1 vote",
        "Answer \"No\": 0 votes",
        "Answer \"Abstain\": 1 vote",
    ] {
        alice.line(text).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_failed_insert_tells_the_sender_and_the_meeting_goes_on() {
    let Some(f) = pgeu(|_| {}).await else { return };
    let db = f.pgeu.as_ref().unwrap();
    let mut alice = f.join(&f.alice).await;
    let mut bob = f.join(&f.bob).await;
    alice.line("Member Bob joined the meeting").await;
    db.execute("ALTER TABLE membership_meetingmessagelog RENAME TO away")
        .await;
    bob.say("lost?").await;
    assert_eq!(
        bob.error().await,
        "Your message could not be stored and was not sent. Please try again."
    );
    alice.0.expect_silence(300).await;
    db.execute("ALTER TABLE away RENAME TO membership_meetingmessagelog")
        .await;
    bob.say("back").await;
    let line: Value = alice.line("back").await;
    assert!(line["id"].as_i64().unwrap() > 0);
    let texts: Vec<String> = db.log(f.meeting).await.into_iter().map(|l| l.2).collect();
    assert!(
        !texts.contains(&"lost?".to_owned()),
        "nothing anyone saw is missing, nothing unseen is stored"
    );
    f.h.shutdown().await;
}
