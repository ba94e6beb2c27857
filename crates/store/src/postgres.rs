//! [`PgStore`]: the PostgreSQL backend, for several nodes sharing one database.
//!
//! Atomicity comes from the primary key: a registration is one
//! `INSERT … ON CONFLICT DO NOTHING`, so concurrent registrations of one name,
//! from any number of nodes, leave exactly one winner. Migrations run under
//! sqlx's advisory lock, so nodes starting together apply each one once.
//!
//! Connections are plain TCP or a unix socket: this build has no TLS for
//! PostgreSQL, so `sslmode=require` fails at connect with [`StoreError::Config`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use switchboard_core::store::StoreError;

use crate::StoreOptions;
use crate::meetings::{MeetingSchema, Queries};
use crate::migrations;
use crate::ops::{self, Backend};
use crate::options::POSTGRES_DEFAULT_MAX_CONNECTIONS;
use crate::sql::SqlStore;

/// A [`Store`](switchboard_core::store::Store) on PostgreSQL. Cloning shares the connection pool.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database[?…]`,
    /// or `postgresql://…`) with default [`StoreOptions`], and brings its
    /// schema up to date.
    ///
    /// Fails with [`StoreError::Config`] if the URL cannot be parsed or the
    /// database's encoding is not UTF8, and [`StoreError::Unavailable`] if the
    /// server cannot be reached within the acquire timeout.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, &StoreOptions::default()).await
    }

    /// Connects with `options`; see [`PgStore::connect`].
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
        PgStore::open_schema(parse_url(url)?, options, MeetingSchema::Native).await
    }

    /// Connects to pgeu-system's database for the meetings service: its
    /// meetings tables are used as they are, never created or altered, and
    /// Switchboard's own tables (stored polls and votes, with their migration
    /// record) go into the schema `switchboard_meetings`, created if missing.
    ///
    /// Only the [`MeetingStore`](switchboard_core::store::MeetingStore) of the
    /// result is meant to be used.
    pub async fn connect_pgeu(
        connect: PgConnectOptions,
        options: &StoreOptions,
    ) -> Result<PgStore, StoreError> {
        PgStore::open_schema(connect, options, MeetingSchema::Pgeu).await
    }

    async fn open_schema(
        mut connect: PgConnectOptions,
        options: &StoreOptions,
        schema: MeetingSchema,
    ) -> Result<PgStore, StoreError> {
        options.validate()?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("switchboard");
        }
        let (host, port) = (connect.get_host().to_owned(), connect.get_port());
        let database = connect.get_database().unwrap_or_default().to_owned();
        probe(&connect, options.acquire_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections_or(POSTGRES_DEFAULT_MAX_CONNECTIONS))
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| ops::map_sqlx(Backend::Postgres, "connect", e))?;
        let store = SqlStore {
            pool,
            op_timeout: options.op_timeout,
            meetings: Queries::new::<Postgres>(schema),
            path: None,
        };
        if let Err(e) = store.prepare(schema).await {
            store.pool.close().await;
            return Err(e);
        }
        tracing::info!(backend = "postgres", %host, port, %database, ?schema, "store opened");
        Ok(store)
    }

    /// Checks the encoding and runs the migrations.
    async fn prepare(&self, schema: MeetingSchema) -> Result<(), StoreError> {
        let encoding: String = self
            .run(
                "connect",
                sqlx::query_scalar("SHOW server_encoding").fetch_one(&self.pool),
            )
            .await?;
        if encoding != "UTF8" {
            return Err(StoreError::Config {
                message: format!("the database's encoding is {encoding}; Switchboard needs UTF8"),
            });
        }
        let migrator = match schema {
            MeetingSchema::Native => migrations::migrator(migrations::POSTGRES),
            MeetingSchema::Pgeu => {
                self.run(
                    "connect",
                    sqlx::query("CREATE SCHEMA IF NOT EXISTS switchboard_meetings")
                        .execute(&self.pool),
                )
                .await?;
                migrations::migrator_into(migrations::PGEU, migrations::PGEU_MIGRATIONS_TABLE)
            }
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| ops::map_migrate(Backend::Postgres, e))
    }
}

/// Opens one connection first, so that a failure at start names the server
/// and the cause (the pool would only say that it timed out waiting).
async fn probe(connect: &PgConnectOptions, timeout: Duration) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let user = connect.get_username().to_owned();
    let database = connect.get_database().unwrap_or(&user).to_owned();
    let at = format!(
        "PostgreSQL at {}:{} (database {database:?}, user {user:?})",
        connect.get_host(),
        connect.get_port()
    );
    let attempt = tokio::time::timeout(timeout, sqlx::PgConnection::connect_with(connect)).await;
    let e = match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(StoreError::Unavailable {
                op: "connect",
                message: format!("cannot connect to {at}: no answer within {timeout:?}"),
            });
        }
    };
    let code = e
        .as_database_error()
        .and_then(|d| d.code().map(|c| c.into_owned()));
    Err(match (code.as_deref(), &e) {
        (Some("28P01" | "28000"), _) => StoreError::Config {
            message: format!(
                "cannot connect to {at}: authentication failed (check the user and password in store.url and pg_hba.conf)"
            ),
        },
        (Some("3D000"), _) => StoreError::Config {
            message: format!(
                "cannot connect to {at}: the database does not exist (create it, or name another in store.url)"
            ),
        },
        (_, sqlx::Error::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            StoreError::Unavailable {
                op: "connect",
                message: format!(
                    "cannot connect to {at}: connection refused (is PostgreSQL running and listening there?)"
                ),
            }
        }
        _ => match ops::map_sqlx(Backend::Postgres, "connect", e) {
            StoreError::Config { message } => StoreError::Config {
                message: format!("cannot connect to {at}: {message}"),
            },
            StoreError::Unavailable { op, message } => StoreError::Unavailable {
                op,
                message: format!("cannot connect to {at}: {message}"),
            },
            other => other,
        },
    })
}

/// Parses a `postgres://` URL into connection options; the error never
/// echoes the URL, which may hold a password.
pub(crate) fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Config {
        message: format!("invalid PostgreSQL URL: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_url_is_a_config_error() {
        let got = PgStore::connect("postgres://user:secret@host:notaport/db").await;
        match got {
            Err(StoreError::Config { message }) => {
                assert!(!message.contains("secret"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Port 1 on loopback: nothing listens there, the connect is refused at once.
        let options = StoreOptions {
            acquire_timeout: std::time::Duration::from_millis(500),
            ..StoreOptions::default()
        };
        let got = PgStore::connect_with("postgres://postgres@127.0.0.1:1/postgres", &options).await;
        assert!(
            matches!(got, Err(StoreError::Unavailable { op: "connect", .. })),
            "{got:?}"
        );
        let message = got.unwrap_err().to_string();
        assert!(
            message.contains("127.0.0.1:1") && message.contains("connection refused"),
            "names the server and the cause: {message}"
        );
    }
}
