//! Registered names outlive the process: the rtc service keeps them in the
//! store, so after a restart a name is still taken and its cookie still
//! works. Once on SQLite (the default, a file) and once on PostgreSQL (a
//! database of its own per run on the test server).

use crate::harness::start;
use crate::rtc_common::*;
use crate::support;
use switchboard_testkit::http;
use switchboard_testkit::pg::PgTestDb;

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
    names_survive_a_restart(db.url()).await;
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
