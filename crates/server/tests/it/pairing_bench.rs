//! A smoke run of `switchboard-bench pairs` with tiny numbers against a real
//! in-process server: the scenario and the pairing service agree on the
//! protocol, every message arrives once, in order and intact, every close is
//! answered with 1000, and the report counts what was asked. (Benchmarks
//! proper are run by hand; see docs/benchmarks.md.)

use crate::harness;

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, pairs};

/// Parses `switchboard-bench pairs <args>` against the server at `url`.
async fn bench(url: &str, args: &[&str]) -> (Ctx, pairs::PairsArgs) {
    let mut argv = vec!["switchboard-bench", "pairs", "--url", url, "--sources", "1"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("bench arguments");
    let Scenario::Pairs(args) = cli.scenario else {
        panic!("not the pairs scenario");
    };
    let ctx = Ctx::new(cli.common).await.expect("bench context");
    (ctx, args)
}

#[tokio::test]
async fn the_pairs_bench_scenario_runs_clean_against_the_server() {
    let h = harness::start(harness::config(|_| {})).await;
    let url = format!("ws://{}/", h.addr);
    let (ctx, args) = bench(&url, &["--channels", "3", "--rounds", "2"]).await;
    assert_eq!((args.exchanges, args.size), (10, 200), "the defaults");
    let summary = pairs::run(&ctx, &args).await.expect("the run completes");
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!(summary.attempted, 3 * 2);
    assert_eq!(summary.created, 3 * 2);
    assert_eq!(summary.completed, 3 * 2);
    assert_eq!(summary.expected, 3 * 2 * 10);
    assert_eq!(summary.relayed, summary.expected);
    assert_eq!(summary.relay_latency.count, summary.expected);
    assert_eq!(summary.setup_latency.count, 3 * 2);
    assert_eq!(
        summary.close_codes.iter().collect::<Vec<_>>(),
        vec![("1000", 3 * 2 * 2)],
        "both members' closes answered with 1000"
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.channels_per_sec > 0.0 && summary.exchanges_per_sec > 0.0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_paced_run_under_a_prefix_passes_and_one_message_over_the_limit_fails() {
    let h = harness::start(harness::config(|c| {
        c.pairing.prefix = "/pair".into();
        c.pairing.max_exchanges = 4;
    }))
    .await;
    let url = format!("ws://{}/", h.addr);
    let (ctx, args) = bench(
        &url,
        &[
            "--prefix",
            "/pair",
            "--channels",
            "2",
            "--rounds",
            "2",
            "--exchanges",
            "4",
            "--size",
            "64",
            "--interval-ms",
            "5",
        ],
    )
    .await;
    let summary = pairs::run(&ctx, &args).await.expect("the run completes");
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!((summary.created, summary.relayed), (4, 16));
    assert!((summary.offered_per_sec - 400.0).abs() < 1e-9);

    // The fifth message ends each channel for both members with 4429.
    let (ctx, args) = bench(
        &url,
        &[
            "--prefix",
            "/pair",
            "--channels",
            "2",
            "--rounds",
            "1",
            "--exchanges",
            "5",
        ],
    )
    .await;
    let summary = pairs::run(&ctx, &args).await.expect("the run completes");
    assert_eq!((summary.created, summary.completed), (2, 0));
    assert_eq!(summary.relayed, 2 * 4);
    assert_eq!(summary.missing, 2);
    assert_eq!(
        summary.errors.iter().collect::<Vec<_>>(),
        vec![("relay: close 4429", 2)]
    );
    assert!(summary.abnormal_closes() >= 2, "{:?}", summary.close_codes);
    assert!(!summary.failures().is_empty());

    // The wrong prefix is not a pairing service: the run cannot start.
    let (ctx, args) = bench(&url, &["--channels", "1", "--rounds", "1"]).await;
    let err = pairs::run(&ctx, &args)
        .await
        .expect_err("no service at /v1/ws/");
    assert!(err.to_string().contains("pairing service at"), "{err}");
    h.shutdown().await;
}
