//! Test helpers for external dependencies: the rule for a dependency that is
//! missing, and a throw-away PostgreSQL database per test.
//!
//! The rule (design §6): a test whose dependency is missing says so loudly on
//! stderr and passes, except under `CI=true`, where it fails.
//!
//! (Kept here until a dev-only testkit crate holds the shared helpers.)

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// The PostgreSQL server the tests use unless `SWITCHBOARD_TEST_PG_URL` (or
/// `SWITCHBOARD_TEST_POSTGRES_URL`, the name docs/testing.md uses) names another.
pub(crate) const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long to wait for the server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this run is CI (`CI=true` or `CI=1`), where a missing dependency is a failure.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports that a test's external dependency is missing: panics under CI,
/// otherwise prints a loud `SKIPPED:` banner to stderr. A caller that gets
/// back from here returns from its test. `how` says how to provide it.
pub(crate) fn dependency_missing(what: &str, how: &str) {
    assert!(
        !in_ci(),
        "{what} ({how}); CI=true: a missing dependency is a failure"
    );
    let bar = "!".repeat(78);
    // Straight to the process's stderr: the test harness captures `eprintln!`
    // of a passing test, and this must be seen.
    let banner = format!("\n{bar}\n!!!! SKIPPED: {what}\n!!!! {how}\n{bar}\n");
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// How to provide the test PostgreSQL server, for the banner.
const PG_HOW: &str = "install PostgreSQL (Debian `postgresql`) with trust auth for user \
postgres on 127.0.0.1:5432, or point SWITCHBOARD_TEST_PG_URL at a server";

/// A database of its own on the test PostgreSQL server, named
/// `switchboard_test_<random hex>`, dropped (best effort) when this value drops,
/// panics included.
#[derive(Debug)]
pub(crate) struct PgTestDb {
    server: PgConnectOptions,
    name: String,
    url: String,
}

impl PgTestDb {
    /// Creates the database, or returns `None` after [`dependency_missing`]
    /// if the server is not reachable.
    pub(crate) async fn create() -> Option<PgTestDb> {
        let server_url = std::env::var("SWITCHBOARD_TEST_PG_URL")
            .or_else(|_| std::env::var("SWITCHBOARD_TEST_POSTGRES_URL"))
            .unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let server = PgConnectOptions::from_str(&server_url)
            .expect("SWITCHBOARD_TEST_PG_URL is not a PostgreSQL URL")
            .database("postgres");
        let mut admin = match tokio::time::timeout(CONNECT_TIMEOUT, server.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                dependency_missing(
                    &format!("PostgreSQL not reachable at {}: {e}", where_is(&server)),
                    PG_HOW,
                );
                return None;
            }
            Err(_) => {
                dependency_missing(
                    &format!(
                        "PostgreSQL not reachable at {}: no answer within {CONNECT_TIMEOUT:?}",
                        where_is(&server)
                    ),
                    PG_HOW,
                );
                return None;
            }
        };
        let name = format!("switchboard_test_{:016x}", rand::random::<u64>());
        let create = format!(r#"CREATE DATABASE "{name}" TEMPLATE template0 ENCODING 'UTF8'"#);
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE on the test server");
        let _ = admin.close().await;
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Some(PgTestDb { server, name, url })
    }

    /// The URL of the test database.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    async fn drop_database(server: PgConnectOptions, name: String) -> Result<(), sqlx::Error> {
        let mut admin: PgConnection = server.connect().await?;
        // FORCE ends the connections a failed test may have left open.
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
