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
    // The console counts the channel once, cluster-wide, on every node.
    for i in 0..3 {
        let stats: serde_json::Value =
            serde_json::from_str(&http::get(c.addr(i), "/api/stats").await.text()).expect("json");
        assert_eq!(stats["channels"], 1, "node {i}: {stats}");
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
    // The console counts users online on every node.
    let stats: serde_json::Value =
        serde_json::from_str(&http::get(c.addr(2), "/api/stats").await.text()).expect("json");
    let rtc = stats["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "rtc"))
        .expect("the rtc card");
    let online = rtc["counters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["key"] == "online"))
        .expect("online");
    assert_eq!(online["value"], 2, "{stats}");
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

/// The channel id in a pairing connection's first frame.
async fn channel_id(c: &mut Client) -> String {
    let hello: serde_json::Value = serde_json::from_str(&c.text().await).expect("json");
    hello["channelid"]
        .as_str()
        .expect("a channel id")
        .to_owned()
}

/// A pairing connection to `node` for channel `id` (empty: create) as client `ip`.
async fn pair(c: &TestCluster, node: usize, id: &str, ip: &str) -> Client {
    ws::try_connect(
        c.addr(node),
        &format!("/v1/ws/{id}"),
        &[("X-Forwarded-For", ip)],
    )
    .await
    .expect("upgrade")
}

fn pairing_cluster(limits: &str) -> ClusterSpec {
    ClusterSpec {
        nodes: 3,
        extra_toml: format!(
            "[pairing]\nprefix = \"\"\ntrusted_proxies = [\"127.0.0.1\"]\n{limits}\n[pubsub]\nenabled = false\n[rtc]\nenabled = false\n[console]\nenabled = false\n"
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_channels_and_their_limits_hold_channel_wide() {
    let Some(c) = TestCluster::start(pairing_cluster("max_exchanges = 4")).await else {
        return;
    };
    // Created on node 0, joined from nodes 1 and 2.
    let mut a = pair(&c, 0, "", "81.2.69.142").await;
    let id = channel_id(&mut a).await;
    let mut b = pair(&c, 1, &id, "81.2.69.142").await;
    assert_eq!(channel_id(&mut b).await, id);
    // The same-address rule, channel-wide: a third member from elsewhere is refused.
    let mut stranger = pair(&c, 2, &id, "1.1.1.1").await;
    assert_eq!(
        stranger.closed().await,
        (Some(4403), "address not in channel".to_owned())
    );
    let mut d = pair(&c, 2, &id, "81.2.69.142").await;
    assert_eq!(channel_id(&mut d).await, id);
    // max_channel_connections (3), channel-wide.
    let mut fourth = pair(&c, 1, &id, "81.2.69.142").await;
    assert_eq!(
        fourth.closed().await,
        (Some(4409), "channel full".to_owned())
    );
    // Messages reach the members on the other nodes; the count is channel-wide.
    a.send_text("one").await;
    for m in [&mut b, &mut d] {
        let v: serde_json::Value = serde_json::from_str(&m.text().await).expect("json");
        assert_eq!(v["message"], "one");
    }
    b.send_text("two").await;
    d.send_text("three").await;
    a.send_text("four").await;
    // a hears two and three; b and d hear the rest below, before the close.
    for _ in 0..2 {
        let _ = a.text().await;
    }
    // The fifth message, wherever it is sent, ends the channel for every member.
    d.send_text("five").await;
    for m in [&mut a, &mut b, &mut d] {
        loop {
            match m.next().await {
                Event::Text(_) => continue,
                Event::Close(code, reason) => {
                    assert_eq!(
                        (code, reason.as_str()),
                        (Some(4429), "channel message limit reached")
                    );
                    break;
                }
                other => panic!("expected the limit's close, got {other:?}"),
            }
        }
    }
    // Gone everywhere: a join gets 4404 as on one node.
    for node in 0..3 {
        let mut late = pair(&c, node, &id, "81.2.69.142").await;
        assert_eq!(
            late.closed().await,
            (Some(4404), "unknown channel".to_owned())
        );
    }
    // Never created anywhere, and malformed ids: the same answers on every node.
    let mut nowhere = pair(&c, 1, "xdp7DlFoK9h6sMtcJJWTqg", "81.2.69.142").await;
    assert_eq!(
        nowhere.closed().await,
        (Some(4404), "unknown channel".to_owned())
    );
    let mut uuid = pair(&c, 2, "0123456789abcdef0123456789abcdef", "81.2.69.142").await;
    assert_eq!(
        uuid.closed().await,
        (
            Some(4404),
            "unknown channel: malformed channel id".to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_data_cap_and_lifespan_hold_channel_wide() {
    let Some(c) = TestCluster::start(pairing_cluster("max_data = 150\nconn_lifespan = 3")).await
    else {
        return;
    };
    // max_data: envelopes counted across nodes end the channel for both, on the
    // message after the one that overshoots (the original's rule).
    let mut a = pair(&c, 0, "", "81.2.69.142").await;
    let id = channel_id(&mut a).await;
    let mut b = pair(&c, 2, &id, "81.2.69.142").await;
    let _ = channel_id(&mut b).await;
    let mut sent = 0;
    let ended = loop {
        let (from, to) = if sent % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        from.send_text("a message of a few bytes").await;
        sent += 1;
        match to.next().await {
            Event::Text(_) => assert!(sent < 10, "the data cap never ended the channel"),
            Event::Close(code, reason) => break (code, reason, sent),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        (ended.0, ended.1.as_str()),
        (Some(4413), "channel data limit reached")
    );
    assert!(ended.2 >= 2, "at least one envelope fits under the cap");
    let last_sender = if ended.2 % 2 == 1 { &mut a } else { &mut b };
    assert_eq!(
        last_sender.closed().await,
        (Some(4413), "channel data limit reached".to_owned())
    );
    // The lifespan runs from creation for members on every node.
    let started = tokio::time::Instant::now();
    let mut a = pair(&c, 1, "", "81.2.69.142").await;
    let id = channel_id(&mut a).await;
    let mut b = pair(&c, 0, &id, "81.2.69.142").await;
    let _ = channel_id(&mut b).await;
    for m in [&mut a, &mut b] {
        assert_eq!(
            m.closed().await,
            (Some(4408), "channel lifespan expired".to_owned())
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(2500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_a_channel_outlives_its_creators_node() {
    let Some(mut c) = TestCluster::start(pairing_cluster("max_channel_connections = 2")).await
    else {
        return;
    };
    let mut a = pair(&c, 1, "", "81.2.69.142").await;
    let id = channel_id(&mut a).await;
    let mut b = pair(&c, 0, &id, "81.2.69.142").await;
    let _ = channel_id(&mut b).await;
    let mut third = pair(&c, 2, &id, "81.2.69.142").await;
    assert_eq!(
        third.closed().await,
        (Some(4409), "channel full".to_owned())
    );
    // The creator's node dies: its member stops counting once the node is declared dead.
    c.kill(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut d = loop {
        let mut d = pair(&c, 2, &id, "81.2.69.142").await;
        match d.next().await {
            Event::Text(t) => {
                assert!(t.contains(&id));
                break d;
            }
            Event::Close(code, _) => {
                assert_eq!(code, Some(4409));
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the dead member still counts"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    b.send_text("still here").await;
    let v: serde_json::Value = serde_json::from_str(&d.text().await).expect("json");
    assert_eq!(v["message"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fanout_drives_three_nodes_without_loss_or_reordering() {
    use clap::Parser as _;
    use switchboard_bench::cli::{Cli, Scenario};
    use switchboard_bench::report::Summary as _;
    use switchboard_bench::scenario::{Ctx, fanout};

    let Some(c) = TestCluster::start(three_nodes()).await else {
        return;
    };
    let urls: Vec<String> = (0..3)
        .map(|i| format!("ws://{}/pubsub/bench-smoke", c.addr(i)))
        .collect();
    let pid = c.node(1).pid().to_string();
    let mut args = vec![
        "switchboard-bench",
        "fanout",
        "--url",
        &urls[0],
        "--sources",
        "1",
        "--subscribers",
        "6",
        "--messages",
        "100",
        "--cpu-pid",
        &pid,
    ];
    for u in &urls {
        args.extend(["--subscriber-url", u.as_str()]);
    }
    let cli = Cli::try_parse_from(args).expect("bench arguments");
    let Scenario::Fanout(args) = cli.scenario else {
        panic!("not the fanout scenario");
    };
    let ctx = Ctx::new(cli.common).await.expect("bench context");
    let s = fanout::run(&ctx, &args).await.expect("the run completes");
    assert!(s.failures().is_empty(), "{:?}", s.failures());
    assert_eq!((s.subscriber_targets, s.deliveries), (3, 600));
    assert_eq!(s.cpu.len(), 1);
}

/// The personas take the cluster's settings from `SWITCHBOARD_CLUSTER_*`, as
/// `serve` does: three Pinghub personas on one NATS are one pubsub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personas_join_a_cluster_from_the_environment() {
    let Some(nats) = switchboard_testkit::nats::NatsServer::start() else {
        return;
    };
    let url = nats.url();
    let prefix = format!("persona{}", std::process::id());
    let node = |name: &str| {
        crate::support::ServerProcess::start_with_env(
            ["pinghub", "-addr=127.0.0.1:0", "-mport=0"],
            &[
                ("SWITCHBOARD_CLUSTER_NATS_URL", url.as_str()),
                ("SWITCHBOARD_CLUSTER_SUBJECT_PREFIX", prefix.as_str()),
                ("SWITCHBOARD_CLUSTER_NODE_NAME", name),
            ],
            1,
        )
    };
    let nodes = [node("persona-a"), node("persona-b"), node("persona-c")];
    for p in &nodes {
        assert!(
            p.wait_for_line("connected to NATS", Duration::from_secs(30))
                .is_some(),
            "{}",
            p.output(30)
        );
    }
    let mut a = ws::connect(nodes[0].addr(), "/across").await;
    let mut b = ws::connect(nodes[1].addr(), "/across").await;
    let r = http::post(nodes[2].addr(), "/across", b"from the other persona").await;
    assert_eq!(r.status, 200);
    assert_eq!(a.text().await, "from the other persona");
    assert_eq!(b.text().await, "from the other persona");
}
