//! The meetings part of the conformance suite: the `MeetingStore` and
//! `MeetingAdmin` contracts (core::store::meetings), run on SQLite (native
//! schema), PostgreSQL (native schema) and PostgreSQL with pgeu-system's
//! tables (set up the way pgeu-system's Django does, see
//! `switchboard_testkit::pgeu`).

use std::sync::Arc;

use switchboard_core::store::meetings::{MeetingState, NewLine, PollEnd};
use switchboard_store::{MeetingStore, Store, StoreError, StoreOptions};
use switchboard_testkit::pgeu::PgeuDb;

use super::Db;

/// How meetings, members and keys get into the database under test.
enum Setup {
    /// Through the store's own `MeetingAdmin`.
    Native(Arc<dyn Store>),
    /// As pgeu-system's web application writes them.
    Pgeu(Box<PgeuDb>),
}

struct MeetingsDb {
    store: Arc<dyn MeetingStore>,
    setup: Setup,
    _db: Option<Db>,
}

impl MeetingsDb {
    async fn sqlite() -> MeetingsDb {
        let db = Db::sqlite().await;
        let store = db.open().await;
        MeetingsDb {
            store: store.clone(),
            setup: Setup::Native(store),
            _db: Some(db),
        }
    }

    async fn postgres() -> Option<MeetingsDb> {
        let db = Db::postgres().await?;
        let store = db.open().await;
        Some(MeetingsDb {
            store: store.clone(),
            setup: Setup::Native(store),
            _db: Some(db),
        })
    }

    async fn pgeu() -> Option<MeetingsDb> {
        let pgeu = PgeuDb::create().await?;
        let store = switchboard_store::open_pgeu(pgeu.url(), &StoreOptions::default())
            .await
            .expect("open pgeu-system's database");
        Some(MeetingsDb {
            store,
            setup: Setup::Pgeu(Box::new(pgeu)),
            _db: None,
        })
    }

    async fn meeting(&self) -> i64 {
        match &self.setup {
            Setup::Native(s) => s.create_meeting("AGM").await.expect("create meeting"),
            Setup::Pgeu(p) => p.meeting("AGM", 0).await,
        }
    }

    async fn member(&self, name: &str) -> i64 {
        match &self.setup {
            Setup::Native(s) => s.create_member(name).await.expect("create member"),
            Setup::Pgeu(p) => p.member(name).await,
        }
    }

    async fn key(&self, meeting: i64, member: i64, key: &str, proxy: Option<&str>) -> i64 {
        match &self.setup {
            Setup::Native(s) => s
                .issue_key(meeting, member, key, proxy)
                .await
                .expect("issue key"),
            Setup::Pgeu(p) => p.key(meeting, member, key, proxy).await,
        }
    }

    async fn admin(&self, meeting: i64, member: i64) {
        match &self.setup {
            Setup::Native(s) => s.add_admin(meeting, member).await.expect("add admin"),
            Setup::Pgeu(p) => p.admin(meeting, member).await,
        }
    }
}

fn key(c: char) -> String {
    std::iter::once(c)
        .chain(std::iter::repeat_n('x', 53))
        .collect()
}

// ---- the checks ----

async fn state_follows_writes(db: MeetingsDb) {
    let s = &db.store;
    assert_eq!(s.meeting_state(987_654).await, Ok(None), "unknown meeting");
    let m = db.meeting().await;
    assert_eq!(s.meeting_state(m).await, Ok(Some(MeetingState::Pending)));
    assert_eq!(s.set_meeting_state(m, MeetingState::Open).await, Ok(true));
    assert_eq!(
        s.set_meeting_state(m, MeetingState::Open).await,
        Ok(false),
        "no change"
    );
    assert_eq!(s.meeting_state(m).await, Ok(Some(MeetingState::Open)));
    assert_eq!(s.set_meeting_state(m, MeetingState::Closed).await, Ok(true));
    assert_eq!(s.meeting_state(m).await, Ok(Some(MeetingState::Closed)));
    assert_eq!(
        s.set_meeting_state(987_654, MeetingState::Open).await,
        Ok(false)
    );
}

async fn keys_identify_members(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    let other = db.meeting().await;
    let alice = db.member("Alice Admin").await;
    let bob = db.member("Bob").await;
    let ka = db.key(m, alice, &key('A'), None).await;
    let kb = db.key(m, bob, &key('B'), Some("Carol Proxy")).await;
    db.key(other, bob, &key('O'), None).await;
    db.admin(m, alice).await;

    let a = s
        .member_by_key(m, &key('A'))
        .await
        .expect("lookup")
        .expect("alice");
    assert_eq!(
        (a.key_id, a.member_id, a.name.as_str()),
        (ka, alice, "Alice Admin")
    );
    assert!(
        a.admin && !a.allow_rejoin && a.proxy_name.is_none(),
        "{a:?}"
    );
    let b = s
        .member_by_key(m, &key('B'))
        .await
        .expect("lookup")
        .expect("bob");
    assert_eq!((b.key_id, b.member_id), (kb, bob));
    assert!(!b.admin);
    assert_eq!(b.proxy_name.as_deref(), Some("Carol Proxy"));
    assert_eq!(
        s.member_by_key(m, &key('O')).await,
        Ok(None),
        "another meeting's key"
    );
    assert_eq!(
        s.member_by_key(m, &key('a')).await,
        Ok(None),
        "keys compare exactly"
    );
    assert_eq!(s.member_by_key(m, "A").await, Ok(None));

    s.set_allow_rejoin(m, kb, true).await.expect("allow");
    assert!(
        s.member_by_key(m, &key('B'))
            .await
            .unwrap()
            .unwrap()
            .allow_rejoin
    );
    s.set_allow_rejoin(m, kb, true).await.expect("idempotent");
    s.set_allow_rejoin(m, kb, false).await.expect("forbid");
    assert!(
        !s.member_by_key(m, &key('B'))
            .await
            .unwrap()
            .unwrap()
            .allow_rejoin
    );
}

async fn lines_are_stored_in_order_and_read_back(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    let other = db.meeting().await;
    let alice = db.member("Alice").await;
    let ka = db.key(m, alice, &key('A'), None).await;
    let w = s.take_writer(m).await.expect("take the writer");
    let w_other = s.take_writer(other).await.expect("take the writer");
    assert_eq!(s.append_lines(m, w, &[]).await, Ok(Vec::new()));
    let lines = vec![
        NewLine {
            sender: None,
            text: "Member Alice joined the meeting".into(),
        },
        NewLine {
            sender: Some(alice),
            text: "hello 'world'; --".into(),
        },
        NewLine {
            sender: None,
            text: "ünïcödé ✓".into(),
        },
    ];
    let stored = s.append_lines(m, w, &lines).await.expect("append");
    assert_eq!(stored.len(), 3);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{stored:?}");
    for l in &stored {
        assert_eq!(l.time.len(), 8, "{l:?}");
        assert_eq!(l.time.as_bytes()[2], b':');
        assert_eq!(l.date.len(), 10, "{l:?}");
        assert_eq!(l.date.as_bytes()[4], b'-');
    }
    s.append_lines(
        other,
        w_other,
        &[NewLine {
            sender: None,
            text: "elsewhere".into(),
        }],
    )
    .await
    .expect("append elsewhere");
    let more = s
        .append_lines(
            m,
            w,
            &[NewLine {
                sender: None,
                text: "later".into(),
            }],
        )
        .await
        .expect("append");
    assert!(more[0].id > stored[2].id, "ids only increase");

    let all = s.lines_after(m, 0).await.expect("read");
    let texts: Vec<&str> = all.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Member Alice joined the meeting",
            "hello 'world'; --",
            "ünïcödé ✓",
            "later"
        ]
    );
    assert_eq!(all[0].stored, stored[0]);
    assert_eq!((all[1].sender, all[1].sender_key), (Some(alice), Some(ka)));
    assert_eq!(all[1].sender_name, "Alice");
    assert_eq!((all[0].sender, all[0].sender_key), (None, None));
    assert_eq!(all[0].sender_name, "");
    let tail = s.lines_after(m, stored[1].id).await.expect("read tail");
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].stored.id, stored[2].id);
    assert_eq!(s.lines_after(m, more[0].id).await, Ok(Vec::new()));
}

/// A batch longer than one INSERT statement is still one ordered, atomic append.
async fn long_batches_keep_their_order(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    let lines: Vec<NewLine> = (0..150)
        .map(|i| NewLine {
            sender: None,
            text: format!("line {i}"),
        })
        .collect();
    let w = s.take_writer(m).await.expect("take the writer");
    let stored = s.append_lines(m, w, &lines).await.expect("append");
    assert_eq!(stored.len(), 150);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    let back = s.lines_after(m, 0).await.expect("read");
    for (i, l) in back.iter().enumerate() {
        assert_eq!(l.text, format!("line {i}"));
        assert_eq!(l.stored.id, stored[i].id);
    }
}

/// All or nothing: a batch with one bad line (a sender that does not exist)
/// stores none of its lines.
async fn a_failed_batch_stores_nothing(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    let lines = vec![
        NewLine {
            sender: None,
            text: "first".into(),
        },
        NewLine {
            sender: Some(999_999),
            text: "from nobody".into(),
        },
    ];
    let w = s.take_writer(m).await.expect("take the writer");
    let got = s.append_lines(m, w, &lines).await;
    assert!(matches!(got, Err(StoreError::Backend { .. })), "{got:?}");
    assert_eq!(s.lines_after(m, 0).await, Ok(Vec::new()));
}

/// One writer per meeting: taking a meeting over raises its epoch, and the
/// old epoch's appends are refused (storing nothing) while the new one's go
/// on; a meeting never taken has no writer; epochs are per meeting.
async fn a_taken_over_writer_is_fenced(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    let other = db.meeting().await;
    let line = |t: &str| {
        vec![NewLine {
            sender: None,
            text: t.into(),
        }]
    };
    let never = s.append_lines(m, 1, &line("no writer yet")).await;
    assert!(matches!(never, Err(StoreError::Fenced { .. })), "{never:?}");
    let old = s.take_writer(m).await.expect("take the writer");
    assert_eq!(old, 1);
    s.append_lines(m, old, &line("from the first owner"))
        .await
        .expect("the writer appends");
    let new = s.take_writer(m).await.expect("take it over");
    assert!(new > old, "{new} > {old}");
    let stale = s
        .append_lines(m, old, &line("from the cut-off owner"))
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    assert_eq!(stale.unwrap_err().label(), "fenced");
    s.append_lines(m, new, &line("from the new owner"))
        .await
        .expect("the new writer appends");
    let texts: Vec<String> = s
        .lines_after(m, 0)
        .await
        .expect("read")
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["from the first owner", "from the new owner"]);
    // Another meeting's epochs are its own.
    assert_eq!(s.take_writer(other).await, Ok(1));
}

async fn polls_and_votes_are_kept(db: MeetingsDb) {
    let s = &db.store;
    let m = db.meeting().await;
    assert_eq!(s.active_poll(m).await, Ok(None));
    let answers = vec!["Yes".to_owned(), "No".to_owned(), String::new()];
    let p = s
        .open_poll(m, "Approve?", &answers, 1_700_000_000_123)
        .await
        .expect("open");
    let again = s.open_poll(m, "Another?", &answers, 1).await;
    assert!(
        matches!(again, Err(StoreError::Backend { .. })),
        "one running poll: {again:?}"
    );
    s.record_vote(p, 7, 0).await.expect("vote");
    s.record_vote(p, 8, 1).await.expect("vote");
    s.record_vote(p, 7, 2).await.expect("changed vote");
    let got = s.active_poll(m).await.expect("read").expect("running");
    assert_eq!(got.id, p);
    assert_eq!(got.question, "Approve?");
    assert_eq!(got.answers, answers);
    assert_eq!(got.closes_at_ms, 1_700_000_000_123);
    assert_eq!(got.votes, vec![(7, 2), (8, 1)]);
    assert_eq!(s.end_poll(p, PollEnd::Completed).await, Ok(true));
    assert_eq!(
        s.end_poll(p, PollEnd::Aborted).await,
        Ok(false),
        "already ended"
    );
    assert_eq!(s.active_poll(m).await, Ok(None));
    let q = s
        .open_poll(m, "No answers", &[], 5)
        .await
        .expect("next poll");
    assert_ne!(p, q);
    let got = s.active_poll(m).await.expect("read").expect("running");
    assert!(got.answers.is_empty() && got.votes.is_empty());
    assert_eq!(s.end_poll(q, PollEnd::Aborted).await, Ok(true));
}

/// The pgeu-system schema: nothing is added to pgeu-system's schema, and the
/// setup operations are refused (pgeu-system's application owns them).
async fn pgeu_tables_are_left_alone(db: MeetingsDb) {
    let Setup::Pgeu(pgeu) = &db.setup else {
        return;
    };
    let want = [
        "auth_user",
        "membership_meeting",
        "membership_meeting_meetingadmins",
        "membership_meetingmessagelog",
        "membership_member",
        "membership_membermeetingkey",
    ];
    assert_eq!(pgeu.public_tables().await, want);
    // Reopening runs the migrations again: a no-op.
    let again = switchboard_store::open_pgeu(pgeu.url(), &StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(again.meeting_state(1).await, Ok(None));
    assert_eq!(pgeu.public_tables().await, want);
    let pg = switchboard_store::PgStore::connect_pgeu(
        pgeu.url().parse().expect("url"),
        &StoreOptions::default(),
    )
    .await
    .expect("connect");
    use switchboard_store::MeetingAdmin;
    assert!(matches!(
        pg.create_meeting("x").await,
        Err(StoreError::Backend {
            op: "create_meeting",
            ..
        })
    ));
}

macro_rules! meetings_conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::MeetingsDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(db) = super::MeetingsDb::postgres().await else { return };
                    super::$check(db).await;
                }
            )*
        }
        mod pgeu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(db) = super::MeetingsDb::pgeu().await else { return };
                    super::$check(db).await;
                }
            )*
        }
    };
}

meetings_conformance!(
    state_follows_writes,
    keys_identify_members,
    lines_are_stored_in_order_and_read_back,
    long_batches_keep_their_order,
    a_failed_batch_stores_nothing,
    a_taken_over_writer_is_fenced,
    polls_and_votes_are_kept,
    pgeu_tables_are_left_alone,
);
