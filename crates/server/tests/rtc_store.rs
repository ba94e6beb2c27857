//! Registered names outlive the process: the rtc service keeps them in the
//! store, so after a restart a name is still taken and its cookie still
//! works. Once on SQLite (the default, a file) and once on PostgreSQL (a
//! database of its own per run on the test server).

mod harness;
mod rtc_common;
mod support;

use std::str::FromStr;
use std::time::Duration;

use harness::start;
use rtc_common::*;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use switchboard_testkit::http;

/// Registers `name` on a server using `store_url`, restarts it on the same
/// store, and checks the name is still known.
async fn names_survive_a_restart(store_url: &str) {
    let cfg = || rtc_config(|c| c.store.url = store_url.to_owned());
    let h = start(cfg()).await;
    let cookie = register(h.addr, PREFIX, "persistent").await;
    h.shutdown().await;

    let h = start(cfg()).await;
    let r = register_json(h.addr, PREFIX, "persistent").await;
    assert_eq!(r.text(), r#"{"status":"TAKEN","message":""}"#);
    let r = http::request(h.addr, "GET", "/rtc/v1/user", &[("Cookie", &cookie)], b"").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let mut c = connect(h.addr, PREFIX, &cookie).await;
    send(&mut c, "persistent", "t", "1").await;
    assert_eq!(
        c.text().await,
        forwarded("persistent", "persistent", "t", "1")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn names_survive_a_restart_on_sqlite() {
    let dir = support::TempDir::new("rtc-sqlite");
    let url = format!("sqlite:{}", dir.path().join("names.sqlite3").display());
    names_survive_a_restart(&url).await;
}

#[tokio::test]
async fn names_survive_a_restart_on_postgres() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    names_survive_a_restart(&db.url).await;
}

#[tokio::test]
async fn the_default_store_is_a_sqlite_file_next_to_the_config_file() {
    let dir = support::TempDir::new("rtc-default-store");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nenabled = false\n";
    let path = dir.write("switchboard.toml", toml);
    let cfg = switchboard::Config::load(Some(&path), Vec::new()).expect("config");
    let h = start(cfg).await;
    register(h.addr, PREFIX, "filed").await;
    h.shutdown().await;
    assert!(dir.path().join("switchboard.sqlite3").is_file());
}

/// A database of its own on the test PostgreSQL server, dropped when this drops.
struct PgTestDb {
    server: PgConnectOptions,
    name: String,
    url: String,
}

impl PgTestDb {
    async fn create() -> Option<PgTestDb> {
        let server_url = support::require_postgres()?;
        let server = PgConnectOptions::from_str(&server_url)
            .expect("SWITCHBOARD_TEST_POSTGRES_URL is a PostgreSQL URL")
            .database("postgres");
        let mut admin = tokio::time::timeout(Duration::from_secs(10), server.connect())
            .await
            .expect("PostgreSQL answers in time")
            .expect("connect to PostgreSQL");
        let name = format!("switchboard_rtc_test_{:016x}", rand::random::<u64>());
        let create = format!(r#"CREATE DATABASE "{name}" TEMPLATE template0 ENCODING 'UTF8'"#);
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Some(PgTestDb { server, name, url })
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot await and may run inside the test's runtime: use a
        // thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin: PgConnection = server.connect().await?;
                let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                sqlx::raw_sql(AssertSqlSafe(drop))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}
