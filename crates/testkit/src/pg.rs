//! A throw-away PostgreSQL database per test ([`PgTestDb`]) on the server the
//! machine runs (see [`crate::deps::postgres_server_url`]).

use std::io::Write as _;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::deps::{POSTGRES_INSTALL, missing_dependency, postgres_server_url};

/// How long to wait for the server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A database of its own on the test PostgreSQL server, named
/// `switchboard_test_<random hex>`, dropped (best effort, `WITH (FORCE)`) when
/// this value drops, panics included.
#[derive(Debug)]
pub struct PgTestDb {
    server: PgConnectOptions,
    name: String,
    url: String,
}

impl PgTestDb {
    /// Creates the database, or returns `None` after [`missing_dependency`]
    /// if the server is not reachable.
    pub async fn create() -> Option<PgTestDb> {
        let server_url = postgres_server_url();
        let server = PgConnectOptions::from_str(&server_url)
            .expect("SWITCHBOARD_TEST_POSTGRES_URL is not a PostgreSQL URL")
            .database("postgres");
        let detail = match tokio::time::timeout(CONNECT_TIMEOUT, server.connect()).await {
            Ok(Ok(mut admin)) => {
                let name = format!("switchboard_test_{:016x}", rand::random::<u64>());
                let create =
                    format!(r#"CREATE DATABASE "{name}" TEMPLATE template0 ENCODING 'UTF8'"#);
                sqlx::raw_sql(AssertSqlSafe(create))
                    .execute(&mut admin)
                    .await
                    .expect("CREATE DATABASE on the test server");
                let _ = admin.close().await;
                let url = server.clone().database(&name).to_url_lossy().to_string();
                return Some(PgTestDb { server, name, url });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        missing_dependency(
            "PostgreSQL",
            &format!("not reachable at {}: {detail}", where_is(&server)),
            POSTGRES_INSTALL,
        );
        None
    }

    /// The URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn drop_database(server: PgConnectOptions, name: String) -> Result<(), sqlx::Error> {
        let mut admin: PgConnection = server.connect().await?;
        // FORCE ends the connections a failed test (or a killed server) may have left open.
        let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
        sqlx::raw_sql(AssertSqlSafe(drop))
            .execute(&mut admin)
            .await?;
        admin.close().await
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot await, and may run inside the test's runtime: use a thread
        // with a runtime of its own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(PgTestDb::drop_database(server, name))
                .map_err(std::io::Error::other)
        })
        .join();
        let warning = match done {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("warning: could not drop test database {}: {e}\n", self.name),
            Err(_) => format!("warning: dropping test database {} panicked\n", self.name),
        };
        let _ = std::io::stderr().write_all(warning.as_bytes());
    }
}

/// `host:port` of a server, for messages (never the password).
fn where_is(server: &PgConnectOptions) -> String {
    format!("{}:{}", server.get_host(), server.get_port())
}
