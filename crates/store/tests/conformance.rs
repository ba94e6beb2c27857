//! The store conformance suite: one set of checks of the `NameStore` and
//! `Store` contracts (core::store), run against every backend.
//!
//! Each check is a plain async function over a [`Db`], a database it may open
//! any number of stores on. The `conformance!` macro turns every check into
//! one test per backend: `sqlite::<check>` on a file in a temp directory, and
//! `postgres::<check>` on a fresh database on the test server (see
//! `switchboard_testkit::pg::PgTestDb`), skipped loudly if that server is not reachable, and
//! failed instead under `CI=true`.

use std::sync::Arc;

use switchboard_core::store::{KeyPart, KeyProblem, MAX_NAME_LEN, MAX_NAMESPACE_LEN};
use switchboard_store::{Registered, Store, StoreError};
use switchboard_testkit::pg::PgTestDb;
use tokio::sync::Barrier;

#[path = "conformance/meetings.rs"]
mod meetings;

/// A database under test and how to reach it.
struct Db {
    url: String,
    backend: &'static str,
    /// The temp directory (SQLite), removed when the test ends.
    _dir: Option<tempfile::TempDir>,
    /// The test database (PostgreSQL), dropped when the test ends.
    _pg: Option<PgTestDb>,
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        // A nested path: opening creates the directories.
        let path = dir.path().join("state").join("switchboard.db");
        Db {
            url: format!("sqlite:{}", path.display()),
            backend: "sqlite",
            _dir: Some(dir),
            _pg: None,
        }
    }

    async fn postgres() -> Option<Db> {
        let db = PgTestDb::create().await?;
        Some(Db {
            url: db.url().to_owned(),
            backend: "postgres",
            _dir: None,
            _pg: Some(db),
        })
    }

    /// Opens a store on this database, through the URL dispatch.
    async fn open(&self) -> Arc<dyn Store> {
        let store = switchboard_store::open(&self.url)
            .await
            .expect("open the store");
        assert_eq!(store.backend(), self.backend);
        store
    }
}

/// Runs every task at once (behind a barrier) and returns their results.
async fn all_at_once<T, F>(n: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let fut = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("task panicked"));
    }
    out
}

fn count<T: PartialEq>(items: &[T], what: &T) -> usize {
    items.iter().filter(|x| *x == what).count()
}

// ---- the checks ----

async fn register_new_then_taken(db: &Db) {
    let store = db.open().await;
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::Taken)
    );
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::Taken)
    );
    assert_eq!(store.register_name("rtc", "bob").await, Ok(Registered::New));
    store.close().await.expect("close");
}

async fn exists_follows_registration(db: &Db) {
    let store = db.open().await;
    assert_eq!(store.name_exists("rtc", "alice").await, Ok(false));
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(store.name_exists("rtc", "alice").await, Ok(true));
    assert_eq!(store.name_exists("rtc", "alicia").await, Ok(false));
    store.close().await.expect("close");
}

async fn remove_frees_the_name(db: &Db) {
    let store = db.open().await;
    assert_eq!(store.remove_name("rtc", "alice").await, Ok(false), "absent");
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(store.remove_name("rtc", "alice").await, Ok(true));
    assert_eq!(store.name_exists("rtc", "alice").await, Ok(false));
    assert_eq!(
        store.remove_name("rtc", "alice").await,
        Ok(false),
        "already removed"
    );
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    store.close().await.expect("close");
}

async fn namespaces_are_isolated(db: &Db) {
    let store = db.open().await;
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(store.name_exists("meetings", "alice").await, Ok(false));
    assert_eq!(
        store.register_name("meetings", "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(store.remove_name("rtc", "alice").await, Ok(true));
    assert_eq!(store.name_exists("meetings", "alice").await, Ok(true));
    assert_eq!(store.name_exists("rtc", "alice").await, Ok(false));
    store.close().await.expect("close");
}

async fn names_compare_exactly(db: &Db) {
    let store = db.open().await;
    let longest = "n".repeat(MAX_NAME_LEN);
    let longest_ns = "s".repeat(MAX_NAMESPACE_LEN);
    // Each is distinct from every other: no case folding, trimming or
    // Unicode normalisation; quotes and LIKE wildcards are plain characters.
    let names = [
        "Alice",
        "alice",
        "alice ",
        " alice",
        "\u{e9}",   // é, precomposed
        "e\u{301}", // é, decomposed
        "名前",
        "a'b\"c; DROP TABLE switchboard_names; --",
        "%",
        "_",
        "\\",
        "😀",
        longest.as_str(),
    ];
    for name in names {
        assert_eq!(
            store.register_name("rtc", name).await,
            Ok(Registered::New),
            "{name:?}"
        );
    }
    for name in names {
        assert_eq!(
            store.register_name("rtc", name).await,
            Ok(Registered::Taken),
            "{name:?}"
        );
        assert_eq!(store.name_exists("rtc", name).await, Ok(true), "{name:?}");
    }
    assert_eq!(store.name_exists("rtc", "ALICE").await, Ok(false));
    assert_eq!(
        store.name_exists("rtc", "a").await,
        Ok(false),
        "no prefix match"
    );
    assert_eq!(
        store.name_exists("rtc", "x").await,
        Ok(false),
        "wildcards are literal"
    );
    assert_eq!(
        store.register_name(&longest_ns, "alice").await,
        Ok(Registered::New)
    );
    assert_eq!(store.name_exists(&longest_ns, "alice").await, Ok(true));
    store.close().await.expect("close");
}

async fn invalid_keys_are_refused(db: &Db) {
    let store = db.open().await;
    let too_long_name = "n".repeat(MAX_NAME_LEN + 1);
    let too_long_ns = "s".repeat(MAX_NAMESPACE_LEN + 1);
    let cases = [
        ("", "alice", KeyPart::Namespace, KeyProblem::Empty),
        ("rtc", "", KeyPart::Name, KeyProblem::Empty),
        ("rtc", "al\0ice", KeyPart::Name, KeyProblem::Nul),
        ("r\0c", "alice", KeyPart::Namespace, KeyProblem::Nul),
        (
            "rtc",
            too_long_name.as_str(),
            KeyPart::Name,
            KeyProblem::TooLong { max: MAX_NAME_LEN },
        ),
        (
            too_long_ns.as_str(),
            "alice",
            KeyPart::Namespace,
            KeyProblem::TooLong {
                max: MAX_NAMESPACE_LEN,
            },
        ),
    ];
    for (ns, name, part, problem) in cases {
        let want = StoreError::InvalidKey { part, problem };
        assert_eq!(
            store.register_name(ns, name).await,
            Err(want.clone()),
            "register {ns:?}/{name:?}"
        );
        assert_eq!(
            store.name_exists(ns, name).await,
            Err(want.clone()),
            "exists {ns:?}/{name:?}"
        );
        assert_eq!(
            store.remove_name(ns, name).await,
            Err(want),
            "remove {ns:?}/{name:?}"
        );
    }
    // Nothing reached the backend, and the store still serves.
    assert_eq!(store.ping().await, Ok(()));
    assert_eq!(
        store.register_name("rtc", "alice").await,
        Ok(Registered::New)
    );
    store.close().await.expect("close");
}

async fn concurrent_registrations_have_one_winner(db: &Db) {
    let store = db.open().await;
    let results = all_at_once(50, |_| {
        let store = store.clone();
        async move { store.register_name("rtc", "contested").await }
    })
    .await;
    assert_eq!(count(&results, &Ok(Registered::New)), 1, "{results:?}");
    assert_eq!(count(&results, &Ok(Registered::Taken)), 49, "{results:?}");
    assert_eq!(store.name_exists("rtc", "contested").await, Ok(true));
    store.close().await.expect("close");
}

async fn concurrent_removals_have_one_winner(db: &Db) {
    let store = db.open().await;
    assert_eq!(
        store.register_name("rtc", "doomed").await,
        Ok(Registered::New)
    );
    let results = all_at_once(20, |_| {
        let store = store.clone();
        async move { store.remove_name("rtc", "doomed").await }
    })
    .await;
    assert_eq!(count(&results, &Ok(true)), 1, "{results:?}");
    assert_eq!(count(&results, &Ok(false)), 19, "{results:?}");
    store.close().await.expect("close");
}

/// Two stores on one database behave like two nodes: each sees the other's
/// writes, and a race across them still has one winner.
async fn two_handles_share_one_database(db: &Db) {
    let a = db.open().await;
    let b = db.open().await;
    assert_eq!(a.register_name("rtc", "alice").await, Ok(Registered::New));
    assert_eq!(b.name_exists("rtc", "alice").await, Ok(true));
    assert_eq!(b.register_name("rtc", "alice").await, Ok(Registered::Taken));
    let results = all_at_once(50, |i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { store.register_name("rtc", "contested").await }
    })
    .await;
    assert_eq!(count(&results, &Ok(Registered::New)), 1, "{results:?}");
    assert_eq!(count(&results, &Ok(Registered::Taken)), 49, "{results:?}");
    assert_eq!(b.remove_name("rtc", "alice").await, Ok(true));
    assert_eq!(a.name_exists("rtc", "alice").await, Ok(false));
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

async fn data_survives_close_and_reopen(db: &Db) {
    let store = db.open().await;
    for name in ["alice", "bob", "carol"] {
        assert_eq!(store.register_name("rtc", name).await, Ok(Registered::New));
    }
    store.close().await.expect("close");
    drop(store);

    // Reopening runs the migrations again: they must be a no-op.
    let store = db.open().await;
    for name in ["alice", "bob", "carol"] {
        assert_eq!(store.name_exists("rtc", name).await, Ok(true), "{name}");
        assert_eq!(
            store.register_name("rtc", name).await,
            Ok(Registered::Taken),
            "{name}"
        );
    }
    assert_eq!(store.remove_name("rtc", "bob").await, Ok(true));
    store.close().await.expect("close");
    drop(store);

    let store = db.open().await;
    assert_eq!(store.name_exists("rtc", "alice").await, Ok(true));
    assert_eq!(
        store.name_exists("rtc", "bob").await,
        Ok(false),
        "the removal was kept too"
    );
    store.close().await.expect("close");
}

async fn a_closed_store_refuses_calls(db: &Db) {
    let store = db.open().await;
    let other_handle = store.clone();
    assert_eq!(store.ping().await, Ok(()));
    store.close().await.expect("close");
    assert_eq!(other_handle.ping().await, Err(StoreError::Closed));
    assert_eq!(
        other_handle.register_name("rtc", "alice").await,
        Err(StoreError::Closed)
    );
    assert_eq!(
        other_handle.name_exists("rtc", "alice").await,
        Err(StoreError::Closed)
    );
    assert_eq!(
        other_handle.remove_name("rtc", "alice").await,
        Err(StoreError::Closed)
    );
    assert_eq!(other_handle.close().await, Ok(()), "close is idempotent");
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let db = super::Db::sqlite().await;
                    super::$check(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(db) = super::Db::postgres().await else {
                        return;
                    };
                    super::$check(&db).await;
                }
            )*
        }
    };
}

conformance!(
    register_new_then_taken,
    exists_follows_registration,
    remove_frees_the_name,
    namespaces_are_isolated,
    names_compare_exactly,
    invalid_keys_are_refused,
    concurrent_registrations_have_one_winner,
    concurrent_removals_have_one_winner,
    two_handles_share_one_database,
    data_survives_close_and_reopen,
    a_closed_store_refuses_calls,
);
