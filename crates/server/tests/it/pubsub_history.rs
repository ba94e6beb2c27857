//! Pubsub history on one node (in memory): `?last=N` replays, envelopes with
//! offsets and epochs, recovery with `?since=…&epoch=…` (exact, or a `gap`
//! message saying why not), and the 400s for bad queries. The same on three
//! nodes over NATS is in `cluster_history`. Wire format: docs/pubsub-history.md.

use serde_json::Value;
use switchboard::Config;
use switchboard::config::HistorySection;
use switchboard_testkit::http;
use switchboard_testkit::ws::{self, Client};

use crate::harness::{Harness, config, start};

/// The headers of a valid WebSocket handshake, for raw HTTP requests.
const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// A server whose channels under `/feed/` keep `max_messages`.
async fn server(max_messages: usize) -> Harness {
    start(config(|c| keep(c, max_messages))).await
}

pub(crate) fn keep(c: &mut Config, max_messages: usize) {
    c.pubsub.history = vec![HistorySection {
        prefix: "/feed/".into(),
        max_messages,
        max_age_secs: 3600,
    }];
}

async fn post(h: &Harness, path: &str, body: &str) {
    let r = http::post(h.addr, path, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The next message, parsed as JSON.
pub(crate) async fn json(c: &mut Client) -> Value {
    let t = c.text().await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
}

/// The next `n` envelopes as (offset, data), checking they share `epoch`.
pub(crate) async fn envelopes(c: &mut Client, n: usize, epoch: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = json(c).await;
        assert_eq!(e["epoch"], epoch, "{e}");
        out.push((
            e["offset"].as_u64().expect("an offset"),
            e["data"].as_str().expect("data").to_owned(),
        ));
    }
    out
}

pub(crate) fn data(v: &[(u64, String)]) -> Vec<&str> {
    v.iter().map(|(_, d)| d.as_str()).collect()
}

#[tokio::test]
async fn last_replays_retained_messages_oldest_first_then_live() {
    let h = server(5).await;
    for i in 1..=7 {
        post(&h, "/pubsub/feed/a", &format!("m{i}")).await;
    }
    let mut three = ws::connect(h.addr, "/pubsub/feed/a?last=3").await;
    for want in ["m5", "m6", "m7"] {
        assert_eq!(three.text().await, want);
    }
    let mut all = ws::connect(h.addr, "/pubsub/feed/a?last=100").await;
    for want in ["m3", "m4", "m5", "m6", "m7"] {
        assert_eq!(all.text().await, want, "only max_messages are kept");
    }
    let mut none = ws::connect(h.addr, "/pubsub/feed/a?last=0").await;
    let mut plain = ws::connect(h.addr, "/pubsub/feed/a").await;
    post(&h, "/pubsub/feed/a", "m8").await;
    for c in [&mut three, &mut all, &mut none, &mut plain] {
        assert_eq!(c.text().await, "m8", "then live");
    }
    // Another channel under the prefix has its own log.
    let mut b = ws::connect(h.addr, "/pubsub/feed/b?last=3").await;
    b.expect_silence(50).await;
    // The test page has a history panel on channels that keep history only.
    assert!(
        http::get(h.addr, "/pubsub/feed/a")
            .await
            .text()
            .contains(r#"id="history""#)
    );
    assert!(
        !http::get(h.addr, "/pubsub/chat")
            .await
            .text()
            .contains(r#"id="history""#)
    );
    h.shutdown().await;
}

/// Subscribers connect with `last` while a publisher posts: each must see the
/// whole channel, once, in order, whichever side of the seam a message fell.
#[tokio::test]
async fn last_meets_a_racing_publish_with_no_gap_and_no_duplicate() {
    let h = server(10_000).await;
    const N: usize = 300;
    let addr = h.addr;
    let (progress, mut posted) = tokio::sync::watch::channel(0usize);
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            let r = http::post(addr, "/pubsub/feed/race", format!("m{i}").as_bytes()).await;
            assert_eq!(r.status, 200);
            progress.send_replace(i);
        }
    });
    // A client at every 15 messages posted, connecting while the posts go on.
    let mut clients = Vec::new();
    for at in (0..=N).step_by(15) {
        posted.wait_for(|p| *p >= at).await.expect("publisher runs");
        clients.push(ws::connect(addr, "/pubsub/feed/race?last=10000").await);
    }
    publisher.await.expect("publisher");
    let want: Vec<String> = (1..=N).map(|i| format!("m{i}")).collect();
    for (k, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < N {
            got.push(c.text().await);
        }
        assert_eq!(got, want, "client {k}");
        c.expect_silence(20).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn envelopes_carry_offsets_and_since_recovers_exactly_what_was_missed() {
    let h = server(100).await;
    post(&h, "/pubsub/feed/e", "before").await;
    let mut a = ws::connect(h.addr, "/pubsub/feed/e?envelope=1").await;
    let start = json(&mut a).await;
    assert_eq!(start["control"], "position", "{start}");
    assert_eq!(start["replay"], 0);
    let epoch = start["epoch"].as_str().expect("an epoch").to_owned();
    let top = start["offset"].as_u64().expect("an offset");
    assert!(top >= 1, "the message before counts");
    for i in 1..=5 {
        post(&h, "/pubsub/feed/e", &format!("m{i}")).await;
    }
    let live = envelopes(&mut a, 5, &epoch).await;
    assert_eq!(data(&live), ["m1", "m2", "m3", "m4", "m5"]);
    assert!(live.windows(2).all(|w| w[0].0 < w[1].0), "{live:?}");
    assert!(live[0].0 > top);
    // The client saw up to m2 (say), went away; m6 and m7 came meanwhile.
    a.close(1000, "").await;
    for i in 6..=7 {
        post(&h, "/pubsub/feed/e", &format!("m{i}")).await;
    }
    let path = format!("/pubsub/feed/e?since={}&epoch={epoch}", live[1].0);
    let mut back = ws::connect(h.addr, &path).await;
    let p = json(&mut back).await;
    assert_eq!(p["control"], "position", "{p}");
    assert_eq!(p["replay"], 5);
    let missed = envelopes(&mut back, 5, &epoch).await;
    assert_eq!(data(&missed), ["m3", "m4", "m5", "m6", "m7"]);
    assert_eq!(&missed[..3], &live[2..], "the same offsets as live");
    assert_eq!(p["offset"].as_u64(), Some(missed[4].0));
    post(&h, "/pubsub/feed/e", "m8").await;
    let next = envelopes(&mut back, 1, &epoch).await;
    assert_eq!(data(&next), ["m8"]);
    // Up to date: nothing to replay.
    let path = format!("/pubsub/feed/e?since={}&epoch={epoch}", next[0].0);
    let mut current = ws::connect(h.addr, &path).await;
    let p = json(&mut current).await;
    assert_eq!(
        (p["control"].as_str(), p["replay"].as_u64()),
        (Some("position"), Some(0))
    );
    current.expect_silence(50).await;
    // last with envelopes: position, then the replay as envelopes.
    let mut l = ws::connect(h.addr, "/pubsub/feed/e?last=2&envelope=1").await;
    assert_eq!(json(&mut l).await["replay"], 2);
    assert_eq!(data(&envelopes(&mut l, 2, &epoch).await), ["m7", "m8"]);
    // The keepalive stays an empty text message, not an envelope.
    l.send_text("").await;
    assert_eq!(l.text().await, "");
    h.shutdown().await;
}

#[tokio::test]
async fn since_past_retention_says_gap_expired_then_goes_live() {
    let h = server(3).await;
    let mut a = ws::connect(h.addr, "/pubsub/feed/x?envelope=1").await;
    let epoch = json(&mut a).await["epoch"].as_str().unwrap().to_owned();
    post(&h, "/pubsub/feed/x", "m1").await;
    let first = envelopes(&mut a, 1, &epoch).await[0].0;
    for i in 2..=6 {
        post(&h, "/pubsub/feed/x", &format!("m{i}")).await;
    }
    let last = envelopes(&mut a, 5, &epoch).await[4].0;
    let path = format!("/pubsub/feed/x?since={first}&epoch={epoch}");
    let mut late = ws::connect(h.addr, &path).await;
    let g = json(&mut late).await;
    assert_eq!(g["control"], "gap", "{g}");
    assert_eq!(g["reason"], "expired");
    assert_eq!(g["epoch"], epoch.as_str());
    assert_eq!(g["offset"].as_u64(), Some(last), "continues from the top");
    late.expect_silence(30).await;
    post(&h, "/pubsub/feed/x", "m7").await;
    assert_eq!(data(&envelopes(&mut late, 1, &epoch).await), ["m7"]);
    // Exactly at the edge on one node (offsets are contiguous there): the
    // oldest kept is m5, so what follows m4 is complete.
    let m4 = first + 3;
    let path = format!("/pubsub/feed/x?since={m4}&epoch={epoch}");
    let mut edge = ws::connect(h.addr, &path).await;
    assert_eq!(json(&mut edge).await["control"], "position");
    assert_eq!(
        data(&envelopes(&mut edge, 3, &epoch).await),
        ["m5", "m6", "m7"]
    );
    h.shutdown().await;
}

#[tokio::test]
async fn since_with_another_epoch_says_gap_epoch_changed() {
    // A restart loses the memory: the old server's epoch is not the new one's.
    let old = server(10).await;
    let mut a = ws::connect(old.addr, "/pubsub/feed/r?envelope=1").await;
    let old_epoch = json(&mut a).await["epoch"].as_str().unwrap().to_owned();
    post(&old, "/pubsub/feed/r", "lost").await;
    let offset = envelopes(&mut a, 1, &old_epoch).await[0].0;
    drop(a);
    old.shutdown().await;
    let new = server(10).await;
    post(&new, "/pubsub/feed/r", "new1").await;
    let path = format!("/pubsub/feed/r?since={offset}&epoch={old_epoch}");
    let mut c = ws::connect(new.addr, &path).await;
    let g = json(&mut c).await;
    assert_eq!(
        (g["control"].as_str(), g["reason"].as_str()),
        (Some("gap"), Some("epoch_changed")),
        "{g}"
    );
    let epoch = g["epoch"].as_str().unwrap().to_owned();
    assert_ne!(epoch, old_epoch);
    assert_eq!(g["offset"].as_u64(), Some(1));
    post(&new, "/pubsub/feed/r", "new2").await;
    assert_eq!(data(&envelopes(&mut c, 1, &epoch).await), ["new2"]);
    // An offset from the future of this epoch is another life too.
    let path = format!("/pubsub/feed/r?since=999&epoch={epoch}");
    let mut f = ws::connect(new.addr, &path).await;
    assert_eq!(json(&mut f).await["reason"], "epoch_changed");
    new.shutdown().await;
}

#[tokio::test]
async fn bad_history_queries_are_refused_with_400_before_the_upgrade() {
    let h = server(10).await;
    let cases = [
        ("/pubsub/feed/q?last=abc", "last must be a whole number"),
        ("/pubsub/feed/q?last=-1", "last must be a whole number"),
        (
            "/pubsub/feed/q?last=10001",
            "last must be a whole number from 0 to 10000",
        ),
        ("/pubsub/feed/q?last=1&last=2", "given twice"),
        ("/pubsub/feed/q?envelope=maybe", "envelope must be 1 or 0"),
        ("/pubsub/feed/q?since=3", "since and epoch go together"),
        ("/pubsub/feed/q?epoch=m1", "since and epoch go together"),
        (
            "/pubsub/feed/q?since=x&epoch=m1",
            "since must be a whole number",
        ),
        ("/pubsub/feed/q?since=1&epoch=%3Cx%3E", "epoch must be"),
        (
            "/pubsub/feed/q?since=1&epoch=m1&last=5",
            "cannot be combined",
        ),
        ("/pubsub/chat?last=3", "keeps no history"),
        ("/pubsub/chat?envelope=1", "keeps no history"),
    ];
    for (path, reason) in cases {
        let r = http::request(h.addr, "GET", path, &UPGRADE, b"").await;
        assert_eq!(r.status, 400, "{path}");
        assert!(r.text().contains(reason), "{path}: {}", r.text());
        assert!(ws::try_connect(h.addr, path, &[]).await.is_err(), "{path}");
    }
    // Other parameters are still ignored, as Pinghub ignores the query.
    let mut ok = ws::connect(h.addr, "/pubsub/chat?x=1").await;
    post(&h, "/pubsub/chat", "hi").await;
    assert_eq!(ok.text().await, "hi");
    h.shutdown().await;
}

#[tokio::test]
async fn without_history_configured_the_query_is_ignored_as_in_pinghub() {
    let h = start(config(|_| {})).await;
    let mut c = ws::connect(h.addr, "/pubsub/feed/a?last=abc&since=x").await;
    post(&h, "/pubsub/feed/a", "plain").await;
    assert_eq!(c.text().await, "plain");
    h.shutdown().await;
}
