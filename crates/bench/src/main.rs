//! `switchboard-bench`: parses the command line, raises the open-file limit,
//! builds the runtime, runs one scenario under the `--timeout` bound and
//! prints its summary.
//!
//! Exit status: 0 when every correctness check passed, 1 when one failed
//! (loss, reordering, missing messages, failed connections), 2 when the run
//! could not be carried out (bad arguments, server unreachable, timeout).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::procfs;
use switchboard_bench::progress::Ticker;
use switchboard_bench::report::{Summary, render};
use switchboard_bench::scenario::{Ctx, churn, fanout, idle, meeting, pairs, rtc, soak, versus};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("switchboard-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenario; `Ok(false)` means a correctness check failed.
fn run(cli: Cli) -> Result<bool> {
    if let Err(e) = procfs::raise_nofile_limit() {
        eprintln!("switchboard-bench: warning: {e}");
    }
    let threads = cli
        .common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("building the tokio runtime")?;
    let timeout = cli.common.run_timeout();
    let outcome = runtime.block_on(async {
        match tokio::time::timeout(timeout, scenario(cli)).await {
            Ok(result) => result,
            Err(_) => bail!(
                "the run did not finish within --timeout ({} s)",
                timeout.as_secs_f64()
            ),
        }
    });
    // Connection tasks still parked on a closed socket must not keep the
    // process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

async fn scenario(cli: Cli) -> Result<bool> {
    let json = cli.common.json;
    let ctx = Ctx::new(cli.common).await.context("preparing the run")?;
    let _ticker = Ticker::start(ctx.progress.clone(), !json);
    match &cli.scenario {
        Scenario::Fanout(args) => match &args.bare_url {
            Some(bare) => emit(&versus::run(&ctx, args, bare).await?, json),
            None => emit(&fanout::run(&ctx, args).await?, json),
        },
        Scenario::Idle(args) if args.worker => {
            idle::run_worker(&ctx, args).await?;
            Ok(true)
        }
        Scenario::Idle(args) => emit(&idle::run(&ctx, args).await?, json),
        Scenario::Churn(args) => emit(&churn::run(&ctx, args).await?, json),
        Scenario::Rtc(args) => emit(&rtc::run(&ctx, args).await?, json),
        Scenario::Pairs(args) => emit(&pairs::run(&ctx, args).await?, json),
        Scenario::Meeting(args) => emit(&meeting::run(&ctx, args).await?, json),
        Scenario::Soak(args) => emit(&soak::run(&ctx, args).await?, json),
    }
}

/// Prints the summary on stdout; returns whether it passed.
fn emit<S: Summary>(summary: &S, json: bool) -> Result<bool> {
    let text = render(summary, json).context("rendering the summary")?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("writing the summary")?;
    stdout.flush().context("writing the summary")?;
    Ok(summary.failures().is_empty())
}
