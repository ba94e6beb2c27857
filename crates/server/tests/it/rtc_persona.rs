//! The `signal-server` persona as a real process: the original's paths at the
//! root, names kept across a restart of the process, SIGTERM handling.

use std::time::Duration;

use crate::support::{ServerProcess, TempDir};
use switchboard_testkit::{http, ws};

fn persona(store: &str) -> ServerProcess {
    ServerProcess::start([
        "signal-server",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        "--ops-listen",
        "off",
    ])
}

async fn register(server: &ServerProcess, name: &str) -> http::Response {
    let body = format!(r#"{{"username":"{name}"}}"#);
    http::request(
        server.addr(),
        "POST",
        "/v1/register",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn serves_the_originals_paths_at_the_root() {
    let dir = TempDir::new("rtc-persona");
    let server = persona(&format!("sqlite:{}", dir.path().join("names.db").display()));
    assert_eq!(
        http::get(server.addr(), "/healthcheck").await.text(),
        "success"
    );
    let r = register(&server, "rooted").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"status":"SUCCESS","message":""}"#)
    );
    let cookie = r
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let user = http::request(
        server.addr(),
        "GET",
        "/v1/user",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!((user.status, user.text().as_str()), (200, "OK"));
    let mut c = ws::try_connect(server.addr(), "/v1/connect", &[("Cookie", &cookie)])
        .await
        .expect("101");
    c.send_text(r#"{"target":"rooted","type":"t","payload":[1]}"#)
        .await;
    assert_eq!(
        c.text().await,
        "{\"originator\":\"rooted\",\"target\":\"rooted\",\"type\":\"t\",\"payload\":[1]}\n"
    );
    assert_eq!(
        http::get(server.addr(), "/").await.text(),
        "Cannot GET /",
        "no console at the root"
    );
    assert_eq!(
        http::get(server.addr(), "/call").await.status,
        404,
        "no demo page"
    );
    assert_eq!(
        http::get(server.addr(), "/rtc/v1/user").await.status,
        404,
        "no native prefix"
    );
}

#[tokio::test]
async fn registered_names_survive_a_restart_of_the_process() {
    let dir = TempDir::new("rtc-persona-restart");
    let store = format!("sqlite:{}", dir.path().join("names.db").display());
    let server = persona(&store);
    let r = register(&server, "survivor").await;
    assert_eq!(r.status, 200);
    let cookie = r
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    drop(server); // SIGKILL: no clean shutdown, the commit is already durable
    let server = persona(&store);
    let again = register(&server, "survivor").await;
    assert_eq!(again.text(), r#"{"status":"TAKEN","message":""}"#);
    let user = http::request(
        server.addr(),
        "GET",
        "/v1/user",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(user.status, 200);
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let dir = TempDir::new("rtc-persona-term");
    let mut server = persona(&format!("sqlite:{}", dir.path().join("names.db").display()));
    let cookie = register(&server, "term")
        .await
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let mut c = ws::try_connect(server.addr(), "/v1/connect", &[("Cookie", &cookie)])
        .await
        .expect("101");
    server.signal("TERM");
    assert_eq!(c.closed().await.0, Some(1001));
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
}
