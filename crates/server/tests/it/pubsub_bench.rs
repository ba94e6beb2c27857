//! Smoke runs of `switchboard-bench fanout` and `churn` with tiny numbers against
//! a real in-process server: the generator and the pubsub service agree on the
//! protocol, nothing is lost or reordered, and the reports add up. (Benchmarks
//! proper are run by hand; see docs/benchmarks.md.)

use crate::harness;

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, churn, fanout};

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
