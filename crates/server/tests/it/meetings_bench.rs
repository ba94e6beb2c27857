//! A smoke run of `switchboard-bench meeting` with tiny numbers against a
//! real in-process server (native meetings on SQLite): the scenario and the
//! service agree on the protocol, every line reaches every member in order,
//! and the report is complete. (Benchmarks proper: docs/benchmarks.md.)

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, meeting};

use crate::harness;

async fn run(extra: &[&str]) {
    let h = harness::start(harness::config(|c| {
        c.rtc.enabled = false;
        c.pubsub.enabled = false;
        c.pairing.enabled = false;
    }))
    .await;
    let url = format!("ws://{}/", h.addr);
    let mut args = vec![
        "switchboard-bench",
        "meeting",
        "--url",
        &url,
        "--sources",
        "1",
    ];
    args.extend_from_slice(extra);
    let cli = Cli::try_parse_from(args).expect("bench arguments");
    let Scenario::Meeting(args) = cli.scenario else {
        panic!("not the meeting scenario");
    };
    let ctx = Ctx::new(cli.common).await.expect("bench context");
    let summary = meeting::run(&ctx, &args).await.expect("the run completes");
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!(summary.connected, args.members);
    assert_eq!(
        summary.expected,
        args.members * args.messages * args.members
    );
    assert_eq!(summary.delivered, summary.expected);
    assert_eq!(summary.latency.count, summary.expected);
    h.shutdown().await;
}

#[tokio::test]
async fn the_meeting_bench_scenario_runs_clean_closed_loop() {
    run(&["--members", "3", "--messages", "5"]).await;
}

#[tokio::test]
async fn the_meeting_bench_scenario_runs_clean_paced() {
    run(&["--members", "4", "--messages", "5", "--rate", "200"]).await;
}
