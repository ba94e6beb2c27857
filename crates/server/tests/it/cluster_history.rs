//! Pubsub history on three nodes over NATS (JetStream): the one-node behaviours
//! of `pubsub_history` hold whichever nodes the publishers and the subscribers
//! use — replay, one set of offsets, exact recovery on another node, a publish
//! on another node racing the connect, fell out of retention, and an epoch
//! change when the stream is lost.

use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use switchboard_testkit::http;
use switchboard_testkit::ws;

use crate::cluster_support::{ClusterSpec, TestCluster};
use crate::pubsub_history::{data, envelopes, json};

/// `/feed/` keeps 100 messages, `/short/` keeps 3.
const HISTORY: &str = r#"
[[pubsub.history]]
prefix = "/feed/"
max_messages = 100
max_age_secs = 3600

[[pubsub.history]]
prefix = "/short/"
max_messages = 3
max_age_secs = 3600
"#;

async fn three_nodes() -> Option<TestCluster> {
    TestCluster::start(ClusterSpec {
        nodes: 3,
        extra_toml: HISTORY.into(),
        ..Default::default()
    })
    .await
}

async fn post(c: &TestCluster, node: usize, path: &str, body: &str) {
    let r = http::post(c.addr(node), path, body.as_bytes()).await;
    assert_eq!(r.status, 200, "node {node}: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_three_nodes_replays_and_recovers_exactly() {
    let Some(c) = three_nodes().await else {
        return;
    };
    let path = "/pubsub/feed/news";
    // Posts of one phase go to one node: the cluster keeps one order, but two
    // nodes' POSTs answered one after the other may be sequenced either way.
    for i in 1..=4 {
        post(&c, 2, path, &format!("m{i}")).await;
    }
    let mut replay = ws::connect(c.addr(0), &format!("{path}?last=10")).await;
    for want in ["m1", "m2", "m3", "m4"] {
        assert_eq!(replay.text().await, want);
    }
    // Envelope clients on two nodes see the same offsets and epoch.
    let mut a = ws::connect(c.addr(1), &format!("{path}?envelope=1")).await;
    let mut b = ws::connect(c.addr(2), &format!("{path}?envelope=1")).await;
    let pa = json(&mut a).await;
    let pb = json(&mut b).await;
    assert_eq!(pa["control"], "position", "{pa}");
    assert_eq!(pa, pb, "one epoch and top on every node");
    let epoch = pa["epoch"].as_str().expect("an epoch").to_owned();
    for i in 5..=9 {
        post(&c, 0, path, &format!("m{i}")).await;
    }
    let on_a = envelopes(&mut a, 5, &epoch).await;
    let on_b = envelopes(&mut b, 5, &epoch).await;
    assert_eq!(data(&on_a), ["m5", "m6", "m7", "m8", "m9"]);
    assert_eq!(on_a, on_b, "the same offsets on nodes 1 and 2");
    assert!(on_a[0].0 > pa["offset"].as_u64().unwrap());
    let live: Vec<String> = {
        let mut v = Vec::new();
        for _ in 5..=9 {
            v.push(replay.text().await);
        }
        v
    };
    assert_eq!(live, ["m5", "m6", "m7", "m8", "m9"], "then live");
    // Client a saw up to m6 and went away; m10 came meanwhile; it comes back
    // through another node.
    a.close(1000, "").await;
    post(&c, 0, path, "m10").await;
    let since = format!("{path}?since={}&epoch={epoch}", on_a[1].0);
    let mut back = ws::connect(c.addr(2), &since).await;
    let p = json(&mut back).await;
    assert_eq!(
        (p["control"].as_str(), p["replay"].as_u64()),
        (Some("position"), Some(4)),
        "{p}"
    );
    let missed = envelopes(&mut back, 4, &epoch).await;
    assert_eq!(data(&missed), ["m7", "m8", "m9", "m10"]);
    assert_eq!(&missed[..3], &on_a[2..]);
    post(&c, 1, path, "m11").await;
    assert_eq!(data(&envelopes(&mut back, 1, &epoch).await), ["m11"]);
    back.expect_silence(50).await;

    // Fell out of retention: /short/ keeps 3.
    let short = "/pubsub/short/s";
    let mut s = ws::connect(c.addr(0), &format!("{short}?envelope=1")).await;
    let p = json(&mut s).await;
    let short_epoch = p["epoch"].as_str().expect("an epoch").to_owned();
    assert_ne!(short_epoch, epoch, "each [[pubsub.history]] is its own log");
    for i in 1..=5 {
        post(&c, 1, short, &format!("s{i}")).await;
    }
    let got = envelopes(&mut s, 5, &short_epoch).await;
    let path = format!("{short}?since={}&epoch={short_epoch}", got[0].0);
    let mut late = ws::connect(c.addr(1), &path).await;
    let g = json(&mut late).await;
    assert_eq!(
        (g["control"].as_str(), g["reason"].as_str()),
        (Some("gap"), Some("expired")),
        "{g}"
    );
    assert_eq!(
        g["offset"].as_u64(),
        Some(got[4].0),
        "continues from the top"
    );
    post(&c, 2, short, "s6").await;
    assert_eq!(data(&envelopes(&mut late, 1, &short_epoch).await), ["s6"]);
    // Kept: s4, s5, s6. After s4 is complete. (After s3 would be too, but
    // on JetStream offsets of one channel are not contiguous, so a client
    // whose own last message is gone is told `expired`: see the docs.)
    let path = format!("{short}?since={}&epoch={short_epoch}", got[3].0);
    let mut ok = ws::connect(c.addr(2), &path).await;
    let p = json(&mut ok).await;
    assert_eq!(p["replay"], 2, "{p}");
    assert_eq!(
        data(&envelopes(&mut ok, 2, &short_epoch).await),
        ["s5", "s6"]
    );
}

/// Subscribers on nodes 1 and 2 connect with `last` while node 0 publishes:
/// a message the history read returns may also arrive live after it (the
/// stream republishes after storing); each must still be seen once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_a_publish_on_another_node_racing_the_connect() {
    let Some(c) = three_nodes().await else {
        return;
    };
    const N: usize = 120;
    let addr = c.addr(0);
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            let r = http::post(addr, "/pubsub/feed/race", format!("m{i}").as_bytes()).await;
            assert_eq!(r.status, 200);
        }
    });
    let mut clients = Vec::new();
    while !publisher.is_finished() || clients.len() < 2 {
        let node = 1 + clients.len() % 2;
        clients.push(ws::connect(c.addr(node), "/pubsub/feed/race?last=100").await);
    }
    publisher.await.expect("publisher");
    assert!(clients.len() > 2, "clients connected during the publishing");
    for (k, cl) in clients.iter_mut().enumerate() {
        // `last=100` of 120: a client that connected with P published starts
        // at m(max(1, P-99)), so no later than m21, and runs to m120 with no
        // gap and no duplicate.
        let first: usize = cl.text().await[1..].parse().expect("mN");
        assert!(first <= N - 99, "client {k} starts at m{first}");
        for want in first + 1..=N {
            assert_eq!(cl.text().await, format!("m{want}"), "client {k}");
        }
        cl.expect_silence(30).await;
    }
}

/// The history stream lost (deleted while NATS restarts): a client coming
/// back with the old epoch is told `epoch_changed` and continues live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_is_an_epoch_change() {
    let Some(mut c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        extra_toml: HISTORY.into(),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let path = "/pubsub/feed/e";
    let mut a = ws::connect(c.addr(0), &format!("{path}?envelope=1")).await;
    let old = json(&mut a).await["epoch"].as_str().unwrap().to_owned();
    post(&c, 1, path, "old").await;
    let offset = envelopes(&mut a, 1, &old).await[0].0;
    drop(a);

    let client = async_nats::connect(c.nats.url()).await.expect("nats");
    let js = jetstream::new(client);
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    let hist: Vec<&String> = names.iter().filter(|n| n.contains("_hist_")).collect();
    assert_eq!(
        hist.len(),
        2,
        "one stream per [[pubsub.history]]: {names:?}"
    );
    for n in hist {
        js.delete_stream(n).await.expect("delete the stream");
    }
    c.nats.stop();
    c.nats.restart();
    c.wait_ready().await;

    // Ready nodes may still refuse (503) until their streams are declared again.
    let since = format!("{path}?since={offset}&epoch={old}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut back = loop {
        match ws::try_connect(c.addr(1), &since, &[]).await {
            Ok(ws) => break ws,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "node 1 still refuses: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let g = json(&mut back).await;
    assert_eq!(
        (g["control"].as_str(), g["reason"].as_str()),
        (Some("gap"), Some("epoch_changed")),
        "{g}"
    );
    let new = g["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    post(&c, 0, path, "new").await;
    assert_eq!(data(&envelopes(&mut back, 1, &new).await), ["new"]);
}
