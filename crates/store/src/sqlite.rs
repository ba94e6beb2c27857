//! [`SqliteStore`]: the default backend, one SQLite database file in WAL mode
//! (or an in-memory database, for tests).
//!
//! Writers take turns on the file's lock; a writer that finds it held waits up
//! to [`StoreOptions::sqlite_busy_timeout`]. With WAL, readers never wait for
//! the writer. `synchronous = NORMAL`: a committed write survives a crash or
//! restart of the process; a power loss may drop the last few commits.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use switchboard_core::store::StoreError;

use crate::StoreOptions;
use crate::meetings::{MeetingSchema, Queries};
use crate::migrations;
use crate::ops::{self, Backend};
use crate::options::SQLITE_DEFAULT_MAX_CONNECTIONS;
use crate::sql::SqlStore;

/// A [`Store`](switchboard_core::store::Store) on SQLite. Cloning shares the connection pool.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens the database file at `path` with default [`StoreOptions`],
    /// creating it and its parent directories if missing, and brings its
    /// schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, &StoreOptions::default()).await
    }

    /// Opens the database file at `path` with `options`; see [`SqliteStore::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<SqliteStore, StoreError> {
        options.validate()?;
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(StoreError::Config {
                message: "sqlite path is empty".to_owned(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StoreError::Config {
                    message: format!("cannot create directory {}: {e}", parent.display()),
                })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.sqlite_busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections_or(SQLITE_DEFAULT_MAX_CONNECTIONS))
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| ops::map_sqlx(Backend::Sqlite, "open", e))?;
        let store = SqliteStore::migrate(pool, Some(path.to_path_buf()), options).await?;
        tracing::info!(backend = "sqlite", path = %path.display(), "store opened");
        Ok(store)
    }

    /// Opens a fresh, private in-memory database. It is lost when the store
    /// closes or drops: for tests, never for names that must survive a restart.
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::open_in_memory_with(&StoreOptions::default()).await
    }

    /// Opens a fresh in-memory database with `options`; see
    /// [`SqliteStore::open_in_memory`]. The pool holds exactly one connection,
    /// kept open for the life of the store: the database lives in it.
    pub async fn open_in_memory_with(options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        options.validate()?;
        // Each parse of `:memory:` names a new shared-cache database.
        let connect = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| ops::map_sqlx(Backend::Sqlite, "open", e))?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| ops::map_sqlx(Backend::Sqlite, "open", e))?;
        SqliteStore::migrate(pool, None, options).await
    }

    async fn migrate(
        pool: SqlitePool,
        path: Option<PathBuf>,
        options: &StoreOptions,
    ) -> Result<SqliteStore, StoreError> {
        if let Err(e) = migrations::migrator(migrations::SQLITE).run(&pool).await {
            pool.close().await;
            return Err(ops::map_migrate(Backend::Sqlite, e));
        }
        Ok(SqlStore {
            pool,
            path,
            op_timeout: options.op_timeout,
            meetings: Queries::new::<Sqlite>(MeetingSchema::Native),
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The SQLite journal mode in effect (`"wal"` for a file, `"memory"` in memory).
    pub async fn journal_mode(&self) -> Result<String, StoreError> {
        self.run(
            "journal_mode",
            sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&self.pool),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::store::{NameStore, Registered, Store};

    #[tokio::test]
    async fn a_file_store_creates_its_directories_and_uses_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/names.db");
        let store = SqliteStore::open(&path).await.expect("open");
        assert!(path.is_file());
        assert_eq!(store.path(), Some(path.as_path()));
        assert_eq!(store.journal_mode().await.expect("pragma"), "wal");
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn an_in_memory_store_works_and_is_private() {
        let a = SqliteStore::open_in_memory().await.expect("open a");
        let b = SqliteStore::open_in_memory().await.expect("open b");
        assert_eq!(a.path(), None);
        assert_eq!(a.register_name("rtc", "alice").await, Ok(Registered::New));
        assert_eq!(a.register_name("rtc", "alice").await, Ok(Registered::Taken));
        assert_eq!(b.name_exists("rtc", "alice").await, Ok(false));
    }

    #[tokio::test]
    async fn an_unopenable_path_fails_with_a_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: SQLite cannot open it.
        let got = SqliteStore::open(dir.path()).await;
        assert!(
            matches!(got, Err(StoreError::Unavailable { op: "open", .. })),
            "{got:?}"
        );
        // A file where a parent directory should be.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let got = SqliteStore::open(file.join("names.db")).await;
        assert!(matches!(got, Err(StoreError::Config { .. })), "{got:?}");
    }

    /// A database migrated by a newer build (a version this build does not
    /// know) is refused rather than used.
    #[tokio::test]
    async fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("names.db");
        let store = SqliteStore::open(&path).await.expect("open");
        sqlx::query(
            "INSERT INTO switchboard_migrations \
             (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, X'00', 0)",
        )
        .execute(&store.pool)
        .await
        .expect("insert");
        store.close().await.expect("close");
        let got = SqliteStore::open(&path).await;
        assert!(matches!(got, Err(StoreError::Migration { .. })), "{got:?}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![b'j'; 4096]).expect("write");
        let got = SqliteStore::open(&path).await;
        assert!(
            matches!(got, Err(StoreError::Backend { op: "open", .. })),
            "{got:?}"
        );
    }
}
