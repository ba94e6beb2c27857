//! Faults on a cluster (issue 7, item 5, and its bad input): NATS restarted
//! mid-run, a node killed with SIGKILL, PostgreSQL unreachable, a node that
//! cannot reach NATS at start, and garbage published under the prefix.

use std::time::Duration;

use switchboard_testkit::http;
use switchboard_testkit::process::ServerProcess;
use switchboard_testkit::ws::{self, Event};

use crate::cluster_support::{ClusterSpec, NODE_TIMEOUT_MS, TestCluster};
use crate::rtc_common::{PREFIX, connect, forwarded, register, register_json, send};

/// Polls `cond` until it holds (bounded): for state with no event to await.
async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_keeps_clients_connected_and_delivery_resumes() {
    let Some(mut c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let mut sub = ws::connect(c.addr(0), "/pubsub/live").await;
    let mut other = ws::connect(c.addr(1), "/pubsub/live").await;
    assert_eq!(
        http::post(c.addr(1), "/pubsub/live", b"before")
            .await
            .status,
        200
    );
    assert_eq!(sub.text().await, "before");
    assert_eq!(other.text().await, "before");

    c.nats.stop();
    eventually(
        "node 1 notices the outage",
        Duration::from_secs(10),
        || async { http::get(c.ops(1), "/healthz").await.status == 503 },
    )
    .await;
    // Published while NATS is down: delivered on the node itself, counted as
    // dropped for the others (never lost silently).
    let dropped_before = c.metric(1, "switchboard_bus_dropped_total", "").await;
    assert_eq!(
        http::post(c.addr(1), "/pubsub/live", b"during")
            .await
            .status,
        200
    );
    assert_eq!(
        other.text().await,
        "during",
        "the publishing node's own subscriber"
    );
    let dropped_after = c.metric(1, "switchboard_bus_dropped_total", "").await;
    assert!(
        dropped_after > dropped_before,
        "the outage's message is counted"
    );

    c.nats.restart();
    c.wait_ready().await;
    assert!(c.metric(0, "switchboard_bus_reconnects_total", "").await >= 1.0);
    // The sockets stayed open; delivery resumes across nodes.
    eventually("delivery resumes", Duration::from_secs(10), || async {
        http::post(c.addr(1), "/pubsub/live", b"after").await.status == 200
    })
    .await;
    loop {
        match sub.next().await {
            Event::Text(t) if t == "after" => break,
            Event::Text(t) => assert_eq!(t, "after", "nothing else arrives"),
            other => panic!("node 0's subscriber: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_releases_its_users_within_the_liveness_timeout() {
    let Some(mut c) = TestCluster::start(ClusterSpec {
        nodes: 3,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let carol = register(c.addr(1), PREFIX, "carol").await;
    let dave = register(c.addr(0), PREFIX, "dave").await;
    let _carol_on_1 = connect(c.addr(1), PREFIX, &carol).await;
    let mut dave_on_0 = connect(c.addr(0), PREFIX, &dave).await;
    // Other nodes' clients: a pubsub pair across nodes 0 and 2.
    let mut sub = ws::connect(c.addr(0), "/pubsub/steady").await;

    let mut refused = connect(c.addr(2), PREFIX, &carol).await;
    assert_eq!(refused.closed().await.1, "ALREADY_EXISTS");

    let killed_at = tokio::time::Instant::now();
    c.kill(1);
    // Carol reconnects through node 2 once node 1 is declared dead: a probe to
    // herself comes back when she is let in; ALREADY_EXISTS while she is not.
    let bound = Duration::from_millis(NODE_TIMEOUT_MS) + Duration::from_secs(5);
    let mut carol_again = loop {
        let mut s = connect(c.addr(2), PREFIX, &carol).await;
        send(&mut s, "carol", "probe", "1").await;
        match s.next().await {
            Event::Text(t) => {
                assert_eq!(t, forwarded("carol", "carol", "probe", "1"));
                break s;
            }
            Event::Close(_, reason) => assert_eq!(reason, "ALREADY_EXISTS"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            killed_at.elapsed() < bound,
            "carol's claim was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(killed_at.elapsed() < bound);
    send(&mut carol_again, "dave", "hello", "1").await;
    assert_eq!(
        dave_on_0.text().await,
        forwarded("carol", "dave", "hello", "1")
    );
    // Registered names are permanent.
    let r = register_json(c.addr(0), PREFIX, "carol").await;
    assert_eq!(r.text(), r#"{"status":"TAKEN","message":""}"#);
    // Clients of the surviving nodes were not affected.
    assert_eq!(
        http::post(c.addr(2), "/pubsub/steady", b"still here")
            .await
            .status,
        200
    );
    assert_eq!(sub.text().await, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_fails_registration_clearly_and_relaying_goes_on() {
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        postgres_proxy: true,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let erin = register(c.addr(0), PREFIX, "erin").await;
    let frank = register(c.addr(1), PREFIX, "frank").await;
    let mut e = connect(c.addr(0), PREFIX, &erin).await;
    let mut f = connect(c.addr(1), PREFIX, &frank).await;

    c.pg_proxy.as_ref().expect("a proxy").cut();
    let r = register_json(c.addr(0), PREFIX, "gina").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        r#"{"status":"ERROR","message":"registration is unavailable, try again later"}"#
    );
    // Live relaying does not touch the store.
    send(&mut e, "frank", "offer", "{}").await;
    assert_eq!(f.text().await, forwarded("erin", "frank", "offer", "{}"));

    c.pg_proxy.as_ref().expect("a proxy").restore();
    eventually(
        "registration works again",
        Duration::from_secs(20),
        || async { register_json(c.addr(1), PREFIX, "gina").await.status == 200 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_nats_says_why_in_one_line_and_is_not_ready_until_connected() {
    let Some(db) = switchboard_testkit::pg::PgTestDb::create().await else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"{}\"\n[cluster]\nnats_url = \"nats://127.0.0.1:{port}\"\n",
        db.url()
    );
    let node = ServerProcess::serve_config(&toml, 1);
    let line = node
        .wait_for_line("cannot reach NATS", Duration::from_secs(15))
        .expect("one line naming the problem");
    assert!(line.contains(&format!("nats://127.0.0.1:{port}")), "{line}");
    assert!(
        line.to_lowercase().contains("refused"),
        "names the cause: {line}"
    );
    let ops_line = node
        .wait_for_line("ops on http://", Duration::from_secs(5))
        .expect("ops");
    let ops: std::net::SocketAddr = ops_line
        .split("ops on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("ops address");
    let r = http::get(ops, "/healthz").await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("not connected to NATS"), "{}", r.text());
    // NATS appears on that port: the node connects by itself and becomes ready.
    let nats =
        switchboard_testkit::nats::NatsServer::start_with(switchboard_testkit::nats::NatsOptions {
            port: Some(port),
            ..Default::default()
        });
    let Some(_nats) = nats else { return };
    eventually(
        "ready once NATS answers",
        Duration::from_secs(20),
        || async { http::get(ops, "/healthz").await.status == 200 },
    )
    .await;
    assert_eq!(
        node.output(500).matches("cannot reach NATS").count(),
        1,
        "said once, not per retry"
    );
}
