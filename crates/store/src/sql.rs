//! [`SqlStore`]: the one implementation of the store traits, generic over the
//! sqlx database through the small [`Dialect`] trait.
//!
//! Every query is written once, with `$N` placeholders (SQLite reads `$N` as
//! the N-th argument too) and `RETURNING` where a caller needs to know whether
//! a row changed. What differs between the backends is only how to open a
//! pool (`sqlite.rs`, `postgres.rs`), a handful of SQL expressions (the
//! clock, time formatting) and the error codes ([`crate::ops`]); the dialect
//! supplies those.

use std::fmt::Debug;
use std::time::Duration;

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use switchboard_core::store::{NameStore, Registered, Store, StoreError, StoreFuture, check_key};

use crate::ops::{self, Backend};

/// What one sqlx database brings to [`SqlStore`]: its backend identity and the
/// SQL that cannot be written the same way for every backend.
pub trait Dialect: Database {
    /// The backend, for error mapping and metric labels.
    const BACKEND: Backend;
    /// An expression for the current time, as stored in a timestamp column:
    /// the wall clock at the moment each row is written (not the start of the
    /// transaction), so rows committed together still get increasing times.
    const NOW: &'static str;
    /// An expression formatting the timestamp column `col` as `HH:MM:SS`.
    fn time_of(col: &str) -> String;
    /// An expression formatting the timestamp column `col` as `YYYY-MM-DD`.
    fn date_of(col: &str) -> String;
}

impl Dialect for sqlx::Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    // Stored as ISO-8601 text in UTC; `%f` gives milliseconds.
    const NOW: &'static str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
    fn time_of(col: &str) -> String {
        format!("strftime('%H:%M:%S', {col}, 'localtime')")
    }
    fn date_of(col: &str) -> String {
        format!("strftime('%Y-%m-%d', {col}, 'localtime')")
    }
}

impl Dialect for sqlx::Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const NOW: &'static str = "clock_timestamp()";
    // In the session's TimeZone, as the original shows its times.
    fn time_of(col: &str) -> String {
        format!("to_char({col}, 'HH24:MI:SS')")
    }
    fn date_of(col: &str) -> String {
        format!("to_char({col}, 'YYYY-MM-DD')")
    }
}

/// A store on the sqlx database `D`. Cloning shares the connection pool.
///
/// [`crate::SqliteStore`] and [`crate::PgStore`] are this type for each
/// backend; their constructors open the pool and run the migrations.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D>,
    pub(crate) op_timeout: Duration,
    /// The meetings queries, for the schema this store was opened on.
    pub(crate) meetings: crate::meetings::Queries,
    /// SQLite only: the database file, `None` in memory.
    pub(crate) path: Option<std::path::PathBuf>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            op_timeout: self.op_timeout,
            meetings: self.meetings.clone(),
            path: self.path.clone(),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Runs `fut` as operation `op` under the store's timeout, mapping its error.
    pub(crate) async fn run<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        ops::run(D::BACKEND, op, self.op_timeout, fut).await
    }
}

// The `where` list below is what generic query code needs from a sqlx
// database. Both backends meet it, but Rust does not carry bounds on other
// types through a trait, so each generic store impl repeats it (keep the
// copies equal).
impl<D: Dialect> NameStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    i64: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    bool: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    String: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<i64>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<String>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    usize: sqlx::ColumnIndex<D::Row>,
{
    fn register_name<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Registered> {
        Box::pin(async move {
            check_key(namespace, name)?;
            let inserted: Option<bool> = self
                .run(
                    "register_name",
                    sqlx::query_scalar(
                        "INSERT INTO switchboard_names (namespace, name) VALUES ($1, $2) \
                         ON CONFLICT (namespace, name) DO NOTHING RETURNING TRUE",
                    )
                    .bind(namespace)
                    .bind(name)
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(if inserted.is_some() {
                Registered::New
            } else {
                Registered::Taken
            })
        })
    }

    fn name_exists<'a>(&'a self, namespace: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            check_key(namespace, name)?;
            self.run(
                "name_exists",
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM switchboard_names WHERE namespace = $1 AND name = $2)",
                )
                .bind(namespace)
                .bind(name)
                .fetch_one(&self.pool),
            )
            .await
        })
    }

    fn remove_name<'a>(&'a self, namespace: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            check_key(namespace, name)?;
            let removed: Option<bool> = self
                .run(
                    "remove_name",
                    sqlx::query_scalar(
                        "DELETE FROM switchboard_names WHERE namespace = $1 AND name = $2 RETURNING TRUE",
                    )
                    .bind(namespace)
                    .bind(name)
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(removed.is_some())
        })
    }
}

impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    i64: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    bool: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    String: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<i64>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<String>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    usize: sqlx::ColumnIndex<D::Row>,
{
    fn backend(&self) -> &'static str {
        D::BACKEND.name()
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.run("ping", sqlx::query("SELECT 1").execute(&self.pool))
                .await
                .map(drop)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }
}
