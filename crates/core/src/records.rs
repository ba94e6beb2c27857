//! The [`Records`] seam: small values every node of a cluster shares, changed
//! only by compare-and-set — the state that must have exactly one version
//! cluster-wide (who holds a name, a pairing channel's members and counters).
//!
//! A record lives in a *space* (declared when the backend is built, each with
//! its own expiry) under a key, and carries a [`Revision`] that changes with
//! every write. In memory on one node; a NATS KV bucket per space on a cluster.
//!
//! Contract:
//! - **Atomicity.** `create` succeeds for exactly one of any number of
//!   concurrent callers; `update` and a `delete` with a revision succeed only if
//!   the record still has that revision. A write that returns `Ok` is seen by
//!   every later `get` on any node.
//! - **Errors are kinds.** [`RecordsError::Exists`] and [`RecordsError::Conflict`]
//!   tell the caller to re-read and decide again; `Unavailable` means the
//!   outcome of a write is unknown.
//! - **Expiry.** A space may expire records not written for its `max_age`
//!   (a safety net against leaks, never the normal way out).
//! - Keys are any UTF-8 string up to [`MAX_KEY_LEN`] bytes; backends encode them.

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;

use crate::bus::BusFuture;

/// A record's version; every successful write changes it.
pub type Revision = u64;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// A record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The value.
    pub value: Bytes,
    /// Its revision.
    pub revision: Revision,
}

/// A space of records and how long an untouched record lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// The name (lowercase letters, digits and `_`).
    pub name: &'static str,
    /// Records not written for this long may disappear (`None`: never).
    pub max_age: Option<Duration>,
}

/// Why a records call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// `create`: the key already has a record.
    #[error("record exists")]
    Exists,
    /// `update`/`delete`: the record changed (or vanished) since it was read.
    #[error("record changed since it was read")]
    Conflict,
    /// The space was not declared when the backend was built.
    #[error("unknown record space {0}")]
    UnknownSpace(String),
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("invalid record key")]
    InvalidKey,
    /// The backend could not be reached; a write's outcome is unknown.
    #[error("records unavailable: {0}")]
    Unavailable(String),
}

/// Shared records. See the module docs for the contract.
pub trait Records: Send + Sync + Debug + 'static {
    /// The record under `key`, if any.
    fn get<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
    ) -> BusFuture<'a, Result<Option<Record>, RecordsError>>;

    /// Creates the record; [`RecordsError::Exists`] if there is one.
    fn create<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
    ) -> BusFuture<'a, Result<Revision, RecordsError>>;

    /// Replaces the record if it still has revision `expected`.
    fn update<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
        expected: Revision,
    ) -> BusFuture<'a, Result<Revision, RecordsError>>;

    /// Deletes the record (if it still has revision `expected`, when given).
    /// Without `expected`, deleting a record that does not exist succeeds; with
    /// it, a record deleted meanwhile is a [`RecordsError::Conflict`], so of two
    /// compare-and-set deletes of one revision exactly one wins.
    fn delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BusFuture<'a, Result<(), RecordsError>>;

    /// Every key of a space (for occasional sweeps, never a hot path).
    fn keys<'a>(&'a self, space: &'a str) -> BusFuture<'a, Result<Vec<String>, RecordsError>>;
}

/// Checks a key against the common rules.
pub fn check_key(key: &str) -> Result<(), RecordsError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        Err(RecordsError::InvalidKey)
    } else {
        Ok(())
    }
}
