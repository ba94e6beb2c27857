//! Switchboard's store backends: SQLite (the default, one file) and
//! PostgreSQL (several nodes sharing one database), behind the traits in
//! [`switchboard_core::store`].
//!
//! This crate owns the backends, their schema migrations and the store URL.
//! [`open`] reads a URL and returns an `Arc<dyn Store>`:
//!
//! | URL | backend |
//! |---|---|
//! | `sqlite:PATH`, `sqlite://PATH`, `sqlite:///ABSOLUTE/PATH` | SQLite file at PATH |
//! | `PATH` (no scheme) | SQLite file at PATH |
//! | `sqlite::memory:` | SQLite in memory (tests only; lost on close) |
//! | `postgres://…`, `postgresql://…` | PostgreSQL |
//!
//! A SQLite path is taken literally: no percent-decoding and no query
//! parameters. Both backends pass one conformance suite
//! (`tests/conformance.rs`); see `docs/store.md`.

pub mod libpq;
pub mod meetings;
mod migrations;
mod ops;
mod options;
mod postgres;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

pub use meetings::MeetingSchema;
pub use ops::Backend;
pub use options::{POSTGRES_DEFAULT_MAX_CONNECTIONS, SQLITE_DEFAULT_MAX_CONNECTIONS, StoreOptions};
pub use postgres::PgStore;
pub use sql::{Dialect, SqlStore};
pub use sqlite::SqliteStore;
pub use switchboard_core::store::{
    MeetingAdmin, MeetingStore, NameStore, Registered, Store, StoreError,
};

/// Opens the store that `url` names with default [`StoreOptions`], creating
/// what is missing and bringing its schema up to date. See the crate docs for
/// the URL forms.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &StoreOptions::default()).await
}

/// Opens the store that `url` names with `options`; see [`open`].
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Target::parse(url)? {
        Target::SqliteFile(path) => Arc::new(SqliteStore::open_with(path, options).await?),
        Target::SqliteMemory => Arc::new(SqliteStore::open_in_memory_with(options).await?),
        Target::Postgres(url) => Arc::new(PgStore::connect_with(url, options).await?),
    })
}

/// Opens pgeu-system's PostgreSQL database at `url` (a lib/pq-style URL, see
/// [`libpq`]) for the meetings service (see [`PgStore::connect_pgeu`]).
pub async fn open_pgeu(
    url: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn MeetingStore>, StoreError> {
    let connect = libpq::connect_options(url)?;
    Ok(Arc::new(PgStore::connect_pgeu(connect, options).await?))
}

/// What a store URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target<'a> {
    SqliteFile(&'a Path),
    SqliteMemory,
    Postgres(&'a str),
}

impl<'a> Target<'a> {
    fn parse(url: &'a str) -> Result<Target<'a>, StoreError> {
        let config = |message: String| Err(StoreError::Config { message });
        if url.is_empty() {
            return config("the store URL is empty".to_owned());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            return match rest {
                "" => config("the sqlite URL has no path".to_owned()),
                ":memory:" => Ok(Target::SqliteMemory),
                _ if rest.contains('?') => config(
                    "sqlite URLs take no query parameters; use StoreOptions for settings"
                        .to_owned(),
                ),
                _ => Ok(Target::SqliteFile(Path::new(rest))),
            };
        }
        if let Some(scheme) = scheme_of(url) {
            return config(format!(
                "unsupported store URL scheme `{scheme}:`; use sqlite:PATH, a plain path, or postgres://"
            ));
        }
        Ok(Target::SqliteFile(Path::new(url)))
    }
}

/// The scheme of `url` if it starts like a URL (`word://`) or names a known
/// scheme without the slashes (`postgres:x`), so a typo is not taken for a file.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let known = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "postgres" | "postgresql" | "sqlite"
    );
    (is_scheme && (rest.starts_with("//") || known)).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        let cases: &[(&str, Target<'_>)] = &[
            (
                "sqlite:data/names.db",
                Target::SqliteFile(Path::new("data/names.db")),
            ),
            (
                "sqlite://data/names.db",
                Target::SqliteFile(Path::new("data/names.db")),
            ),
            (
                "sqlite:///var/lib/sb.db",
                Target::SqliteFile(Path::new("/var/lib/sb.db")),
            ),
            (
                "sqlite:/var/lib/sb.db",
                Target::SqliteFile(Path::new("/var/lib/sb.db")),
            ),
            ("sqlite::memory:", Target::SqliteMemory),
            ("sqlite://:memory:", Target::SqliteMemory),
            ("names.db", Target::SqliteFile(Path::new("names.db"))),
            (
                "/var/lib/sb.db",
                Target::SqliteFile(Path::new("/var/lib/sb.db")),
            ),
            ("./c:d.db", Target::SqliteFile(Path::new("./c:d.db"))),
            ("postgres://u@h/db", Target::Postgres("postgres://u@h/db")),
            (
                "postgresql://u:p@h:5433/db?sslmode=disable",
                Target::Postgres("postgresql://u:p@h:5433/db?sslmode=disable"),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(Target::parse(url).as_ref(), Ok(want), "{url}");
        }
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in [
            "",
            "sqlite:",
            "sqlite://",
            "sqlite:names.db?mode=ro",
            "mysql://u@h/db",
            "http://example.com/x",
            "postgres:db",
            "POSTGRES://u@h/db",
        ] {
            let got = Target::parse(url);
            assert!(
                matches!(got, Err(StoreError::Config { .. })),
                "{url}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn open_dispatches_to_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("x/names.db").display());
        let store = open(&url).await.expect("open");
        assert_eq!(store.backend(), "sqlite");
        store.close().await.expect("close");

        let bare = dir.path().join("bare.db");
        let store = open(&bare.display().to_string()).await.expect("open bare");
        assert_eq!(store.backend(), "sqlite");
        assert!(bare.is_file());
        store.close().await.expect("close");

        let mem = open("sqlite::memory:").await.expect("open memory");
        assert_eq!(mem.backend(), "sqlite");
        assert_eq!(mem.register_name("rtc", "a").await, Ok(Registered::New));
    }

    #[tokio::test]
    async fn open_validates_options_first() {
        let options = StoreOptions {
            max_connections: Some(0),
            ..StoreOptions::default()
        };
        let got = open_with("sqlite::memory:", &options).await;
        assert!(matches!(got, Err(StoreError::Config { .. })), "{got:?}");
    }
}
