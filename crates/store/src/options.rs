//! [`StoreOptions`]: the pool and timeout bounds of a store, shared by both
//! backends, with their defaults and validation.

use std::time::Duration;

use switchboard_core::store::StoreError;

/// Pool size when [`StoreOptions::max_connections`] is `None`, for SQLite.
///
/// SQLite runs one writer at a time; with WAL, readers go alongside it.
pub const SQLITE_DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Pool size when [`StoreOptions::max_connections`] is `None`, for PostgreSQL.
pub const POSTGRES_DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// The bounds of a store's connection pool and calls.
///
/// Every bound has a named overflow policy: a caller that cannot get a
/// connection within `acquire_timeout`, or an answer within `op_timeout`, gets
/// [`StoreError::Unavailable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections the pool holds. `None` picks the backend's default
    /// ([`SQLITE_DEFAULT_MAX_CONNECTIONS`], [`POSTGRES_DEFAULT_MAX_CONNECTIONS`]).
    /// An in-memory SQLite store always uses one.
    pub max_connections: Option<u32>,
    /// Connections kept open while idle (PostgreSQL; default 0).
    pub min_connections: u32,
    /// How long a call waits for a free connection, including opening a new
    /// one (default 5 s).
    pub acquire_timeout: Duration,
    /// How long one call may take in all, waiting included (default 10 s).
    pub op_timeout: Duration,
    /// How long SQLite waits for another writer's lock before giving up
    /// (default 5 s). Ignored by PostgreSQL.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: None,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// Checks the options, naming the first bad field.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |message: &str| {
            Err(StoreError::Config {
                message: message.to_owned(),
            })
        };
        if self.max_connections == Some(0) {
            return bad("max_connections must be at least 1");
        }
        if let Some(max) = self.max_connections
            && self.min_connections > max
        {
            return bad("min_connections must not exceed max_connections");
        }
        if self.acquire_timeout.is_zero() {
            return bad("acquire_timeout must be positive");
        }
        if self.op_timeout.is_zero() {
            return bad("op_timeout must be positive");
        }
        if self.sqlite_busy_timeout.is_zero() {
            return bad("sqlite_busy_timeout must be positive");
        }
        Ok(())
    }

    /// The pool size for a backend whose default is `default`.
    pub(crate) fn max_connections_or(&self, default: u32) -> u32 {
        self.max_connections.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(StoreOptions::default().validate(), Ok(()));
    }

    #[test]
    fn bad_bounds_name_their_field() {
        let cases = [
            (
                StoreOptions {
                    max_connections: Some(0),
                    ..StoreOptions::default()
                },
                "max_connections",
            ),
            (
                StoreOptions {
                    max_connections: Some(2),
                    min_connections: 3,
                    ..StoreOptions::default()
                },
                "min_connections",
            ),
            (
                StoreOptions {
                    acquire_timeout: Duration::ZERO,
                    ..StoreOptions::default()
                },
                "acquire_timeout",
            ),
            (
                StoreOptions {
                    op_timeout: Duration::ZERO,
                    ..StoreOptions::default()
                },
                "op_timeout",
            ),
            (
                StoreOptions {
                    sqlite_busy_timeout: Duration::ZERO,
                    ..StoreOptions::default()
                },
                "sqlite_busy_timeout",
            ),
        ];
        for (options, field) in cases {
            match options.validate() {
                Err(StoreError::Config { message }) => {
                    assert!(message.starts_with(field), "{message}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
