//! The store seam: what services keep that must outlive a process.
//!
//! This module owns the persistence traits services program against, their
//! error type, and the key rules every backend enforces. The backends
//! themselves (SQLite, PostgreSQL) live in the `switchboard-store` crate; core
//! has no SQL dependency.
//!
//! Layout, and the plan as services arrive:
//! - One narrow trait per kind of data, named for what it holds. Today that is
//!   [`NameStore`]: names registered once and kept (the rtc service, whose
//!   registered names must survive a restart), and [`MeetingStore`] /
//!   [`MeetingAdmin`] (submodule [`meetings`]): the meetings archive.
//! - [`Store`] is the handle a backend hands out (`Arc<dyn Store>`): backend
//!   identity, health and shutdown, with every narrow trait as a supertrait, so
//!   one handle reaches all of them. A new narrow trait is added to its
//!   supertrait list.
//! - Every async method returns a [`StoreFuture`]: boxed, so the traits stay
//!   object-safe, and `Send`, so a service can await it inside a spawned task.
//!
//! Rules common to every method:
//! - A call that returns `Ok` is durable: it has committed, and every later
//!   call through any handle on the same database, in this process or
//!   another, sees it.
//! - A call that fails with [`StoreError::Unavailable`] has an unknown outcome
//!   when it was a write: it may or may not have committed.
//! - Keys are checked with [`check_key`] before any I/O; a bad key is
//!   [`StoreError::InvalidKey`] on every backend alike.
//! - Comparison is exact: byte-for-byte, case-sensitive, no trimming or
//!   Unicode normalisation.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

pub mod meetings;

pub use meetings::{MeetingAdmin, MeetingStore};

/// The future every async store method returns.
///
/// Boxed so the store traits stay object-safe (`Arc<dyn Store>`), and `Send` so
/// it can be awaited inside a spawned task.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The longest namespace accepted, in bytes of UTF-8.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// The longest name accepted, in bytes of UTF-8.
///
/// Bounded so that every backend can index it (PostgreSQL refuses btree
/// entries past about 2.7 KB); far above any name a protocol needs.
pub const MAX_NAME_LEN: usize = 1024;

/// The outcome of [`NameStore::register_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registered {
    /// The name was free; this call registered it.
    New,
    /// The name was already registered; nothing changed.
    Taken,
}

/// Which part of a key was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The namespace (for example the service name).
    Namespace,
    /// The name within the namespace.
    Name,
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyPart::Namespace => "namespace",
            KeyPart::Name => "name",
        })
    }
}

/// Why a key was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum KeyProblem {
    /// The key is the empty string.
    #[error("is empty")]
    Empty,
    /// The key is longer than `max` bytes.
    #[error("is longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded, in bytes.
        max: usize,
    },
    /// The key contains a NUL character, which PostgreSQL text cannot hold.
    #[error("contains a NUL character")]
    Nul,
}

/// Why a store call failed. Tests and callers match on the variant (the
/// kind); the strings only carry the backend's detail for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL or options are not usable (unknown scheme, bad option,
    /// a directory that cannot be created, a TLS failure). Retrying will not help.
    #[error("store configuration: {message}")]
    Config {
        /// What is wrong, naming the offending part.
        message: String,
    },
    /// The backend could not be reached, or did not answer in time (connect
    /// refused, pool exhausted past its acquire timeout, connection lost, lock
    /// wait exceeded). Retrying later may succeed. A write's outcome is unknown.
    #[error("store unavailable during {op}: {message}")]
    Unavailable {
        /// The operation that failed, for example `register_name`.
        op: &'static str,
        /// The backend's detail.
        message: String,
    },
    /// The store was closed with [`Store::close`]; it will not serve again.
    #[error("store closed")]
    Closed,
    /// A namespace or name breaks the key rules (see [`check_key`]). Nothing
    /// was sent to the backend.
    #[error("invalid store key: {part} {problem}")]
    InvalidKey {
        /// Which part of the key.
        part: KeyPart,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// Bringing the schema up to date failed when the store was opened (for
    /// example the database holds migrations this build does not know).
    #[error("store migration: {message}")]
    Migration {
        /// The migrator's detail.
        message: String,
    },
    /// A meeting's log write carried a writer epoch that is no longer the
    /// meeting's: another writer has taken the meeting over since. Nothing
    /// was written; the caller must stop writing to that meeting.
    #[error("store refused {op}: another writer has taken the meeting over")]
    Fenced {
        /// The operation that was refused.
        op: &'static str,
    },
    /// The backend answered with an error this layer does not expect (an SQL
    /// error, a constraint, undecodable data). Usually a bug or a damaged
    /// database; retrying will not help.
    #[error("store backend error during {op}: {message}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// The backend's detail.
        message: String,
    },
}

impl StoreError {
    /// A short, stable name for the kind, for metric labels and logs:
    /// `config`, `unavailable`, `closed`, `invalid_key`, `migration`, `backend`.
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::Config { .. } => "config",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Closed => "closed",
            StoreError::InvalidKey { .. } => "invalid_key",
            StoreError::Migration { .. } => "migration",
            StoreError::Fenced { .. } => "fenced",
            StoreError::Backend { .. } => "backend",
        }
    }
}

/// Checks a `(namespace, name)` key against the rules every backend enforces:
/// both non-empty, no NUL character, the namespace at most
/// [`MAX_NAMESPACE_LEN`] bytes and the name at most [`MAX_NAME_LEN`] bytes.
///
/// Backends call it before any I/O; services may call it to reject input early.
pub fn check_key(namespace: &str, name: &str) -> Result<(), StoreError> {
    check_part(KeyPart::Namespace, namespace, MAX_NAMESPACE_LEN)?;
    check_part(KeyPart::Name, name, MAX_NAME_LEN)
}

fn check_part(part: KeyPart, value: &str, max: usize) -> Result<(), StoreError> {
    let problem = if value.is_empty() {
        KeyProblem::Empty
    } else if value.len() > max {
        KeyProblem::TooLong { max }
    } else if value.contains('\0') {
        KeyProblem::Nul
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey { part, problem })
}

/// Names registered once and kept: a set of `(namespace, name)` keys.
///
/// The rtc service registers user names in it; a name stays registered until
/// an administrator removes it, across restarts and across every node sharing
/// the database. See the module docs for the rules common to every method.
pub trait NameStore: Send + Sync + Debug + 'static {
    /// Registers `name` in `namespace` if it is free.
    ///
    /// Atomic: the check and the insert are one step in the backend. Of any
    /// number of concurrent calls for one key, through one handle or many, on
    /// one node or many, exactly one returns [`Registered::New`] and every other
    /// returns [`Registered::Taken`]. Registering never changes an existing
    /// entry. After `New` returns, [`name_exists`](Self::name_exists) is `true`
    /// for every caller. If the call fails with [`StoreError::Unavailable`] the
    /// name may or may not be registered; a retry answers `Taken` if it was.
    fn register_name<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Registered>;

    /// Whether `name` is registered in `namespace`.
    ///
    /// A read of committed state: it sees every registration and removal that
    /// returned before the call began; one racing with it may or may not be
    /// seen. It never observes a half-done write.
    fn name_exists<'a>(&'a self, namespace: &'a str, name: &'a str) -> StoreFuture<'a, bool>;

    /// Removes `name` from `namespace` (an administrative action; services do
    /// not free names). Returns whether it was registered.
    ///
    /// Atomic: of concurrent removals of one key exactly one returns `true`.
    /// Once it returns, the name is free, and the next registration of it
    /// returns [`Registered::New`].
    fn remove_name<'a>(&'a self, namespace: &'a str, name: &'a str) -> StoreFuture<'a, bool>;
}

/// A store backend as the server holds it: `Arc<dyn Store>`.
///
/// It reaches every narrow store trait (they are its supertraits), and adds
/// identity, health and shutdown. Cloning the `Arc` shares one connection pool.
pub trait Store: NameStore + MeetingStore + MeetingAdmin {
    /// The backend's name, for logs, metrics and the health endpoint:
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Checks that the backend answers: takes a connection from the pool and
    /// runs a trivial statement.
    ///
    /// `Ok` means the store could serve a call at that moment; it changes
    /// nothing. Fails with [`StoreError::Unavailable`] when the backend cannot
    /// be reached within the configured timeouts, and [`StoreError::Closed`]
    /// after [`close`](Self::close).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Closes the store for shutdown: waits for calls in flight to finish,
    /// then closes every connection (SQLite checkpoints its write-ahead log).
    ///
    /// Idempotent. Every call on any clone of this handle made after `close`
    /// began fails with [`StoreError::Closed`]. Data committed before is kept
    /// and seen by the next store opened on the same database.
    fn close(&self) -> StoreFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_key_table() {
        let long_ns = "n".repeat(MAX_NAMESPACE_LEN);
        let too_long_ns = "n".repeat(MAX_NAMESPACE_LEN + 1);
        let long_name = "x".repeat(MAX_NAME_LEN);
        let too_long_name = "x".repeat(MAX_NAME_LEN + 1);
        // (namespace, name, the rejection expected)
        type Case<'a> = (&'a str, &'a str, Option<(KeyPart, KeyProblem)>);
        let cases: &[Case<'_>] = &[
            ("rtc", "alice", None),
            ("rtc", "ünï cödé 名前", None),
            (&long_ns, &long_name, None),
            ("", "alice", Some((KeyPart::Namespace, KeyProblem::Empty))),
            ("rtc", "", Some((KeyPart::Name, KeyProblem::Empty))),
            ("rtc", "a\0b", Some((KeyPart::Name, KeyProblem::Nul))),
            ("r\0", "a", Some((KeyPart::Namespace, KeyProblem::Nul))),
            (
                &too_long_ns,
                "a",
                Some((
                    KeyPart::Namespace,
                    KeyProblem::TooLong {
                        max: MAX_NAMESPACE_LEN,
                    },
                )),
            ),
            (
                "rtc",
                &too_long_name,
                Some((KeyPart::Name, KeyProblem::TooLong { max: MAX_NAME_LEN })),
            ),
        ];
        for (ns, name, want) in cases {
            let got = check_key(ns, name);
            match want {
                None => assert_eq!(got, Ok(()), "{ns:?}/{name:?}"),
                Some((part, problem)) => assert_eq!(
                    got,
                    Err(StoreError::InvalidKey {
                        part: *part,
                        problem: *problem
                    }),
                    "{ns:?}/{name:?}"
                ),
            }
        }
    }

    #[test]
    fn length_is_counted_in_bytes() {
        // 'é' is two bytes: half the limit in characters is already at it.
        let name = "é".repeat(MAX_NAME_LEN / 2);
        assert_eq!(check_key("rtc", &name), Ok(()));
        let name = format!("{name}a");
        assert!(matches!(
            check_key("rtc", &name),
            Err(StoreError::InvalidKey {
                part: KeyPart::Name,
                problem: KeyProblem::TooLong { .. }
            })
        ));
    }

    #[test]
    fn errors_display_their_kind() {
        let e = StoreError::InvalidKey {
            part: KeyPart::Name,
            problem: KeyProblem::TooLong { max: 3 },
        };
        assert_eq!(
            e.to_string(),
            "invalid store key: name is longer than 3 bytes"
        );
        let e = StoreError::Unavailable {
            op: "ping",
            message: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "store unavailable during ping: connection refused"
        );
    }

    /// The traits must stay usable as `Arc<dyn Store>`.
    #[test]
    fn store_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn Store>>) {}
        takes(None);
    }
}
