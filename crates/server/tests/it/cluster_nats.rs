//! The NATS side of a cluster: the authentication NATS users expect (user and
//! password, token, `tls://` with a CA), and bad input on the subjects — a
//! program publishing garbage under our prefix, a message from an unknown node,
//! a permissions violation — each counted, logged once, never delivered.

use std::time::Duration;

use bytes::Bytes;
use switchboard_testkit::http;
use switchboard_testkit::nats::NatsOptions;
use switchboard_testkit::process::TempDir;
use switchboard_testkit::ws;

use crate::cluster_support::{ClusterSpec, TestCluster};

/// Two nodes on a NATS server with `nats`, the nodes' `[cluster]` lines `auth`:
/// a POST on node 1 reaches a subscriber on node 0.
async fn crosses(nats: NatsOptions, auth: &str) {
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        nats,
        cluster_toml: auth.to_owned(),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let mut sub = ws::connect(c.addr(0), "/pubsub/auth").await;
    assert_eq!(
        http::post(c.addr(1), "/pubsub/auth", b"authenticated")
            .await
            .status,
        200
    );
    assert_eq!(sub.text().await, "authenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    crosses(
        NatsOptions {
            user_password: Some(("sb".into(), "s3cret-pass".into())),
            ..Default::default()
        },
        "user = \"sb\"\npassword = \"s3cret-pass\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    crosses(
        NatsOptions {
            token: Some("t0ken-for-the-cluster".into()),
            ..Default::default()
        },
        "token = \"t0ken-for-the-cluster\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let dir = TempDir::new("nats-tls");
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("rcgen");
    let cert = dir.write("cert.pem", &c.cert.pem());
    let key = dir.write("key.pem", &c.signing_key.serialize_pem());
    crosses(
        NatsOptions {
            tls: Some((cert.clone(), key)),
            ..Default::default()
        },
        &format!("tls_ca_file = \"{}\"", cert.display()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_named_and_the_node_is_not_ready() {
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 1,
        nats: NatsOptions {
            user_password: Some(("sb".into(), "right".into())),
            ..Default::default()
        },
        cluster_toml: "user = \"sb\"\npassword = \"wrong-one\"".into(),
        no_wait: true,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let line = c
        .node(0)
        .wait_for_line("cannot reach NATS", Duration::from_secs(15))
        .expect("a line naming the problem");
    assert!(line.to_lowercase().contains("authorization"), "{line}");
    assert!(
        !c.node(0).output(500).contains("wrong-one"),
        "no password in the logs"
    );
    assert_eq!(http::get(c.ops(0), "/healthz").await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_strangers_on_our_subjects_are_counted_not_delivered() {
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let mut sub = ws::connect(c.addr(0), "/pubsub/x").await;
    let raw = async_nats::connect(c.nats.url())
        .await
        .expect("a raw client");
    // The topic `pubsub:/x` travels on `<prefix>.t.pubsub.e` + base64url("/x").
    let subject = format!("{}.t.pubsub.eL3g", c.prefix());
    raw.publish(subject.clone(), Bytes::from_static(b"not an envelope"))
        .await
        .expect("publish");
    // A well-formed envelope (version 1, text) from a node nobody knows.
    let mut stranger = vec![1u8, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0];
    stranger.extend_from_slice(b"from a stranger");
    raw.publish(subject, Bytes::from(stranger))
        .await
        .expect("publish");
    raw.flush().await.expect("flush");
    // A real message after them arrives, and only it.
    assert_eq!(
        http::post(c.addr(1), "/pubsub/x", b"real").await.status,
        200
    );
    assert_eq!(sub.text().await, "real");
    sub.expect_silence(200).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let malformed = c
            .metric(0, "switchboard_bus_dropped_total", "reason=\"malformed\"")
            .await;
        let unknown = c
            .metric(
                0,
                "switchboard_bus_dropped_total",
                "reason=\"unknown_node\"",
            )
            .await;
        if malformed >= 1.0 && unknown >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "malformed {malformed}, unknown {unknown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = c.node(0).output(500);
    assert_eq!(
        out.matches("malformed message").count(),
        1,
        "logged once:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permissions_violation_is_counted_logged_once_and_harms_nothing_else() {
    let prefix = format!("perm{:08x}", rand::random::<u32>());
    // "/denied" is base64url "L2RlbmllZA": its sequenced subject is off limits.
    let config = format!(
        r#"authorization {{
  users = [
    {{ user: sb, password: pw, permissions: {{
        publish: {{ allow: [">"], deny: ["{prefix}.s.o.pubsub.eL2RlbmllZA"] }},
        subscribe: {{ allow: [">"] }} }} }}
  ]
}}"#
    );
    let Some(c) = TestCluster::start(ClusterSpec {
        nodes: 2,
        prefix: Some(prefix),
        nats: NatsOptions {
            config: Some(config),
            ..Default::default()
        },
        cluster_toml: "user = \"sb\"\npassword = \"pw\"".into(),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let mut denied = ws::connect(c.addr(0), "/pubsub/denied").await;
    let mut fine = ws::connect(c.addr(0), "/pubsub/fine").await;
    for _ in 0..3 {
        assert_eq!(
            http::post(c.addr(1), "/pubsub/denied", b"nope")
                .await
                .status,
            200
        );
    }
    assert_eq!(
        http::post(c.addr(1), "/pubsub/fine", b"yes").await.status,
        200
    );
    assert_eq!(fine.text().await, "yes");
    denied.expect_silence(300).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c
        .metric(1, "switchboard_bus_errors_total", "kind=\"server\"")
        .await
        < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the violation is counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.node(1)
        .wait_for_line("ermissions", Duration::from_secs(5))
        .expect("the cause is logged");
    let out = c.node(1).output(500);
    assert_eq!(
        out.to_lowercase().matches("permissions violation").count(),
        1,
        "logged once:\n{out}"
    );
    assert_eq!(http::get(c.ops(1), "/healthz").await.status, 200);
}
