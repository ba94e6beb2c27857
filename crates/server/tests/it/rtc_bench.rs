//! A smoke run of `switchboard-bench rtc` with tiny numbers against a real
//! in-process server: the scenario and the service agree on the protocol,
//! every message arrives in order, and the report is complete. (Benchmarks
//! proper are run by hand; see docs/benchmarks.md.)

use crate::harness;
use crate::rtc_common;

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, rtc};

#[tokio::test]
async fn the_rtc_bench_scenario_runs_clean_against_the_server() {
    let h = harness::start(rtc_common::rtc_config(|_| {})).await;
    let url = format!("ws://{}/rtc", h.addr);
    let cli = Cli::try_parse_from([
        "switchboard-bench",
        "rtc",
        "--url",
        &url,
        "--sources",
        "1",
        "--pairs",
        "3",
        "--rounds",
        "5",
        "--candidates",
        "2",
    ])
    .expect("bench arguments");
    let Scenario::Rtc(args) = cli.scenario else {
        panic!("not the rtc scenario");
    };
    let ctx = Ctx::new(cli.common).await.expect("bench context");
    let summary = rtc::run(&ctx, &args).await.expect("the run completes");
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!(summary.expected, 3 * 5 * 2 * 3);
    assert_eq!(summary.received, summary.expected);
    assert_eq!(summary.relay_latency.count, summary.expected);
    assert_eq!(summary.negotiation.count, 3 * 5);
    h.shutdown().await;
}
