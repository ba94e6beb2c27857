//! Running one store operation: the per-operation timeout, the mapping from
//! sqlx errors to [`StoreError`] kinds, and the operation metrics.
//!
//! Metrics, labelled by `backend` and `op`:
//! - `switchboard_store_op_seconds` (histogram): how long each call took;
//! - `switchboard_store_errors_total` (counter), also labelled by `kind`
//!   ([`StoreError::label`]): calls that failed.

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;
use switchboard_core::store::StoreError;

/// Which backend a store runs on; error codes and metric labels differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The name [`Store::backend`](switchboard_core::store::Store::backend) reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Runs `fut` as operation `op` under `limit`, maps its error, and records it.
///
/// On timeout the future is dropped (sqlx cancels the statement) and the call
/// fails with [`StoreError::Unavailable`]; a write's outcome is then unknown.
pub(crate) async fn run<T>(
    backend: Backend,
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(map_sqlx(backend, op, e)),
        Err(_) => Err(StoreError::Unavailable {
            op,
            message: format!("no answer within {limit:?}"),
        }),
    };
    record(backend, op, started, result.as_ref().err());
    result
}

/// Records the metrics of one finished call.
pub(crate) fn record(
    backend: Backend,
    op: &'static str,
    started: Instant,
    error: Option<&StoreError>,
) {
    let name = backend.name();
    histogram!("switchboard_store_op_seconds", "backend" => name, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Some(e) = error {
        counter!(
            "switchboard_store_errors_total",
            "backend" => name,
            "op" => op,
            "kind" => e.label()
        )
        .increment(1);
    }
}

/// Maps an sqlx error to its [`StoreError`] kind.
pub(crate) fn map_sqlx(backend: Backend, op: &'static str, e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::PoolClosed => StoreError::Closed,
        E::PoolTimedOut | E::Io(_) | E::WorkerCrashed => StoreError::Unavailable {
            op,
            message: e.to_string(),
        },
        // TLS fails on certificates, or on `sslmode=require` in a build
        // without TLS: configuration either way.
        E::Configuration(_) | E::Tls(_) => StoreError::Config {
            message: e.to_string(),
        },
        E::Migrate(m) => map_migrate(backend, *m),
        E::Database(ref db) if is_transient(backend, db.as_ref()) => StoreError::Unavailable {
            op,
            message: e.to_string(),
        },
        other => StoreError::Backend {
            op,
            message: other.to_string(),
        },
    }
}

/// Maps a migration failure: a lost connection stays [`StoreError::Unavailable`],
/// anything else is [`StoreError::Migration`].
pub(crate) fn map_migrate(backend: Backend, e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => {
            match map_sqlx(backend, "migrate", inner) {
                kept @ (StoreError::Unavailable { .. } | StoreError::Closed) => kept,
                other => StoreError::Migration {
                    message: other.to_string(),
                },
            }
        }
        other => StoreError::Migration {
            message: other.to_string(),
        },
    }
}

/// Whether a database error is about the backend's state rather than the
/// request, so that the same call may succeed later.
fn is_transient(backend: Backend, e: &dyn DatabaseError) -> bool {
    let Some(code) = e.code() else {
        return false;
    };
    match backend {
        // SQLSTATE: connection exception, insufficient resources, serialization
        // failure, deadlock, lock not available, query cancelled (statement
        // timeout), server shutting down or starting.
        Backend::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(&*code, "40001" | "40P01" | "55P03" | "57014")
        }
        // Extended result codes; the primary code is the low byte: BUSY,
        // LOCKED, IOERR, FULL, CANTOPEN.
        Backend::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_states_map_to_kinds() {
        assert_eq!(
            map_sqlx(Backend::Sqlite, "ping", sqlx::Error::PoolClosed),
            StoreError::Closed
        );
        assert!(matches!(
            map_sqlx(Backend::Postgres, "ping", sqlx::Error::PoolTimedOut),
            StoreError::Unavailable { op: "ping", .. }
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            map_sqlx(Backend::Postgres, "register_name", sqlx::Error::Io(io)),
            StoreError::Unavailable {
                op: "register_name",
                ..
            }
        ));
        let tls = sqlx::Error::Tls("TLS upgrade required but SQLx was built without TLS".into());
        assert!(matches!(
            map_sqlx(Backend::Postgres, "connect", tls),
            StoreError::Config { .. }
        ));
        assert!(matches!(
            map_sqlx(Backend::Sqlite, "name_exists", sqlx::Error::RowNotFound),
            StoreError::Backend {
                op: "name_exists",
                ..
            }
        ));
    }

    #[test]
    fn migration_errors_map_to_migration() {
        assert!(matches!(
            map_migrate(Backend::Postgres, MigrateError::VersionMissing(7)),
            StoreError::Migration { .. }
        ));
        assert_eq!(
            map_migrate(
                Backend::Sqlite,
                MigrateError::Execute(sqlx::Error::PoolClosed)
            ),
            StoreError::Closed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_limit_is_unavailable() {
        let never = std::future::pending::<Result<(), sqlx::Error>>();
        let got = run(Backend::Postgres, "ping", Duration::from_secs(3), never).await;
        assert!(
            matches!(got, Err(StoreError::Unavailable { op: "ping", .. })),
            "{got:?}"
        );
    }
}
