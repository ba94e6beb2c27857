//! Smoke runs of `switchboard-bench fanout` and `churn` with tiny numbers against
//! a real in-process server: the generator and the pubsub service agree on the
//! protocol, nothing is lost or reordered, and the reports add up. (Benchmarks
//! proper are run by hand; see docs/benchmarks.md.)

use crate::harness;

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, churn, fanout, versus};

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("switchboard-bench").chain(args.iter().copied()))
        .expect("bench arguments")
}

#[tokio::test]
async fn fanout_over_websocket_and_post_loses_nothing() {
    let h = harness::start(harness::config(|_| {})).await;
    let url = format!("ws://{}/pubsub/smoke", h.addr);
    for publish in ["ws", "post"] {
        let c = cli(&[
            "fanout",
            "--url",
            &url,
            "--sources",
            "1",
            "--subscribers",
            "5",
            "--messages",
            "50",
            "--publish",
            publish,
        ]);
        let Scenario::Fanout(args) = c.scenario else {
            panic!("not the fanout scenario");
        };
        let ctx = Ctx::new(c.common).await.expect("bench context");
        let s = fanout::run(&ctx, &args).await.expect("the run completes");
        assert!(s.failures().is_empty(), "{publish}: {:?}", s.failures());
        assert_eq!(s.subscribers_connected, 5);
        assert_eq!(s.expected_deliveries, 250);
        assert_eq!(s.deliveries, 250, "{publish}");
    }
    h.shutdown().await;
}

/// `fanout --bare-url`: the same run against pubsub and the bare broadcast
/// yardstick, alternating, with the ratio of their lossless rates.
#[tokio::test]
async fn fanout_side_by_side_with_the_bare_broadcast_reports_a_ratio() {
    let h = harness::start(harness::config(|_| {})).await;
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the bare server");
    let bare_url = format!("ws://{}/any", bare.local_addr().expect("its address"));
    let bare_server = tokio::spawn(switchboard_bench::bare::serve(bare));
    let url = format!("ws://{}/pubsub/versus", h.addr);
    let c = cli(&[
        "fanout",
        "--url",
        &url,
        "--sources",
        "1",
        "--subscribers",
        "4",
        "--messages",
        "40",
        "--bare-url",
        &bare_url,
        "--rounds",
        "2",
    ]);
    let Scenario::Fanout(args) = c.scenario else {
        panic!("not the fanout scenario");
    };
    let bare_url = args.bare_url.clone().expect("--bare-url parsed");
    let ctx = Ctx::new(c.common).await.expect("bench context");
    let s = versus::run(&ctx, &args, &bare_url)
        .await
        .expect("the runs complete");
    assert!(s.failures().is_empty(), "{:?}", s.failures());
    let servers: Vec<_> = s.runs.iter().map(|r| (r.server, r.round)).collect();
    assert_eq!(
        servers,
        [("bare", 1), ("pubsub", 1), ("pubsub", 2), ("bare", 2)],
        "alternating order"
    );
    for r in &s.runs {
        assert!(
            r.lossless,
            "{} #{}: {:?}",
            r.server,
            r.round,
            r.summary.failures()
        );
        assert_eq!(r.summary.deliveries, 160, "{} #{}", r.server, r.round);
    }
    let (p, b) = (
        s.pubsub_lossless_per_sec.expect("a pubsub rate"),
        s.bare_lossless_per_sec.expect("a bare rate"),
    );
    let ratio = s.ratio.expect("a ratio");
    assert!((ratio - p / b).abs() < 1e-9, "{ratio} vs {p}/{b}");
    let text = switchboard_bench::report::render(&s, false).expect("render");
    assert!(text.contains("ratio"), "{text}");
    bare_server.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn churn_connects_echoes_and_closes() {
    let h = harness::start(harness::config(|_| {})).await;
    let url = format!("ws://{}/pubsub/churn", h.addr);
    let c = cli(&[
        "churn",
        "--url",
        &url,
        "--sources",
        "1",
        "--rate",
        "50",
        "--duration",
        "0.2",
    ]);
    let Scenario::Churn(args) = c.scenario else {
        panic!("not the churn scenario");
    };
    let ctx = Ctx::new(c.common).await.expect("bench context");
    let s = churn::run(&ctx, &args).await.expect("the run completes");
    assert!(s.failures().is_empty(), "{:?}", s.failures());
    assert_eq!(s.completed, s.scheduled);
    assert!(s.scheduled >= 5);
    h.shutdown().await;
}
