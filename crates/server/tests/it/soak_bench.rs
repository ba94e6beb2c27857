//! A short `switchboard-bench soak` against a real `switchboard` process: a few hundred
//! connections with churn, slow and silent clients, and published messages for about
//! forty seconds; afterwards the server's open descriptors and tokio tasks must come back
//! to what they were before the first client (the long run is in docs/benchmarks.md).

use std::time::Duration;

use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, soak};

use crate::support::ServerProcess;

/// Short keepalive and a small outbox, so the silent and slow clients are ended by the
/// server during the run.
const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
[ops]
listen = "127.0.0.1:0"
[store]
url = "sqlite::memory:"
[pubsub]
ping_interval_secs = 2
pong_timeout_secs = 3
outbox_messages = 8
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_leaks_no_descriptors_or_tasks() {
    let server = ServerProcess::serve_config(CONFIG, 1);
    let ops = server
        .wait_for_line("ops on http://", Duration::from_secs(10))
        .expect("the ops listener line");
    let ops = ops
        .split_once("ops on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("the ops URL")
        .to_owned();
    let url = format!("ws://{}/pubsub/soak", server.addr());
    let pid = server.pid().to_string();
    let c = Cli::try_parse_from([
        "switchboard-bench",
        "soak",
        "--url",
        &url,
        "--sources",
        "4",
        "--connections",
        "300",
        "--duration",
        "40",
        "--sample-interval",
        "5",
        "--channels",
        "10",
        "--churn-rate",
        "30",
        "--ramp-rate",
        "300",
        "--publish-rate",
        "100",
        "--slow-percent",
        "5",
        "--slow-pause",
        "2",
        "--silent-percent",
        "5",
        "--server-pid",
        &pid,
        "--metrics-url",
        &ops,
        "--settle-timeout",
        "30",
    ])
    .expect("bench arguments");
    let Scenario::Soak(args) = c.scenario else {
        panic!("not the soak scenario");
    };
    let ctx = Ctx::new(c.common).await.expect("bench context");
    let s = soak::run(&ctx, &args).await.expect("the run completes");
    let report = switchboard_bench::report::render(&s, false).unwrap();
    assert!(s.failures().is_empty(), "{report}");
    assert!(s.samples.len() >= 6, "{report}");
    assert!(s.before.tasks.is_some(), "no task gauge: {report}");
    assert!(s.connects > 300 + 100, "no churn: {report}");
    assert!(s.delivered > 1000, "{report}");
    assert!(s.left_closed > 0 && s.left_abrupt > 0, "{report}");
    assert!(
        s.samples.iter().any(|x| x.clients >= 290),
        "the population never filled: {report}"
    );
    eprintln!("{report}");
}
