//! Three real nodes sharing a test `nats-server` and a fresh PostgreSQL
//! database: pubsub and rtc behave as on one node (issue 7, item 4).

use std::time::Duration;

use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Client, Event};

use crate::cluster_support::{ClusterSpec, TestCluster};
use crate::rtc_common::{NOT_FOUND, PREFIX, connect, forwarded, register, send};

fn three_nodes() -> ClusterSpec {
    ClusterSpec {
        nodes: 3,
        ..Default::default()
    }
}

async fn texts(c: &mut Client, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.text().await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_one_order_on_every_node_for_posts_and_websocket_publishes() {
    let Some(c) = TestCluster::start(three_nodes()).await else {
        return;
    };
    let path = "/pubsub/room";
    let mut subs = Vec::new();
    for i in 0..3 {
        subs.push(ws::connect(c.addr(i), path).await);
    }
    // The first message after the 101s: a POST on node 2 reaches all three.
    let r = http::post(c.addr(2), path, b"hello from a POST").await;
    assert_eq!(r.status, 200);
    for s in &mut subs {
        assert_eq!(s.text().await, "hello from a POST");
    }
    // Two WebSocket publishers on nodes 0 and 1 and POSTs on node 2, interleaved.
    const N: usize = 60;
    let mut p0 = ws::connect(c.addr(0), path).await;
    let mut p1 = ws::connect(c.addr(1), path).await;
    let addr2 = c.addr(2);
    let posts = tokio::spawn(async move {
        for i in 0..N / 3 {
            let r = http::post(addr2, "/pubsub/room", format!("post-{i}").as_bytes()).await;
            assert_eq!(r.status, 200);
        }
    });
    for i in 0..N {
        p0.send_text(&format!("n0-{i}")).await;
        p1.send_text(&format!("n1-{i}")).await;
    }
    posts.await.expect("posts");
    let total = 2 * N + N / 3;
    let mut seen = Vec::new();
    for s in &mut subs {
        seen.push(texts(s, total).await);
    }
    assert_eq!(seen[0], seen[1], "node 0 and node 1 saw one order");
    assert_eq!(seen[0], seen[2], "node 0 and node 2 saw one order");
    for who in ["n0-", "n1-", "post-"] {
        let own: Vec<&String> = seen[0].iter().filter(|m| m.starts_with(who)).collect();
        assert!(
            own.windows(2).all(|w| {
                let n = |s: &str| s[who.len()..].parse::<usize>().unwrap();
                n(w[0]) < n(w[1])
            }),
            "{who} in publish order"
        );
    }
    // The publishers, subscribed too, saw the same sequence (after their own join).
    let tail = texts(&mut p0, 2 * N + N / 3).await;
    assert_eq!(tail, seen[0]);
    for s in &mut subs {
        s.expect_silence(100).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_a_publish_right_after_the_101_on_another_node_arrives() {
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    for i in 0..20 {
        let path = format!("/pubsub/fresh-{i}");
        let mut s = ws::connect(c.addr(0), &path).await;
        let r = http::post(c.addr(1), &path, b"first").await;
        assert_eq!(r.status, 200);
        assert_eq!(s.text().await, "first", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtc_names_presence_delivery_and_kick_span_the_cluster() {
    let Some(c) = TestCluster::start(three_nodes()).await else {
        return;
    };
    // Registered once, cluster-wide (PostgreSQL).
    let alice = register(c.addr(0), PREFIX, "alice").await;
    let bob = register(c.addr(1), PREFIX, "bob").await;
    let r = crate::rtc_common::register_json(c.addr(2), PREFIX, "alice").await;
    assert_eq!(r.text(), r#"{"status":"TAKEN","message":""}"#);

    let mut a = connect(c.addr(0), PREFIX, &alice).await;
    let mut b = connect(c.addr(1), PREFIX, &bob).await;
    // A second live connection for a name, on another node: ALREADY_EXISTS.
    let mut dup = connect(c.addr(2), PREFIX, &alice).await;
    assert_eq!(
        dup.closed().await,
        (Some(4000), "ALREADY_EXISTS".to_owned())
    );
    // A message to a user on another node arrives byte for byte.
    let payload = r#"{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1","n":[1,2.50,"é"]}"#;
    send(&mut a, "bob", "offer", payload).await;
    assert_eq!(b.text().await, forwarded("alice", "bob", "offer", payload));
    send(&mut b, "alice", "answer", "{}").await;
    assert_eq!(a.text().await, forwarded("bob", "alice", "answer", "{}"));
    // Offline on every node: TARGET_NOT_FOUND.
    send(&mut a, "nobody", "offer", "1").await;
    assert_eq!(a.text().await, NOT_FOUND);
    // Kick (from loopback, on node 2) closes sockets wherever they are.
    let r = http::get(c.addr(2), "/rtc/v1/kick-active-users").await;
    assert_eq!(r.status, 200);
    for s in [&mut a, &mut b] {
        match s.next().await {
            Event::Close(code, reason) => {
                assert_eq!((code, reason.as_str()), (Some(4001), "KICKED"))
            }
            other => panic!("expected the kick's close, got {other:?}"),
        }
    }
    // The names are free again, on any node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect(c.addr(2), PREFIX, &alice).await;
        send(&mut again, "alice", "t", "1").await;
        match again.next().await {
            Event::Text(t) => {
                assert_eq!(t, forwarded("alice", "alice", "t", "1"));
                break;
            }
            Event::Close(_, reason) if reason == "ALREADY_EXISTS" => {
                assert!(tokio::time::Instant::now() < deadline, "alice never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
