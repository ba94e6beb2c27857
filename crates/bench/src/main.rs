//! `switchboard-bench`: parses the command line, raises the open-file limit,
//! builds the runtime, runs one scenario under the `--timeout` bound and
//! prints its summary.
//!
//! With `--record FILE` the summary and the command line are also written to
//! FILE; `compare FILE` reruns that command line and prints each figure's
//! ratio to the recorded one after the summary.
//!
//! Exit status: 0 when every correctness check passed, 1 when one failed
//! (loss, reordering, missing messages, failed connections), 2 when the run
//! could not be carried out (bad arguments, server unreachable, timeout).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use switchboard_bench::cli::{Cli, CompareArgs, PlotArgs, Scenario};
use switchboard_bench::compare::{self, Record};
use switchboard_bench::procfs;
use switchboard_bench::progress::Ticker;
use switchboard_bench::report::{Summary, render};
use switchboard_bench::scenario::{Ctx, churn, fanout, idle, meeting, pairs, rtc, soak, versus};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = Cli::parse();
    let result = match &cli.scenario {
        Scenario::Compare(c) => rerun(c.clone()),
        Scenario::Plot(p) => plot(p).map(|()| true),
        _ => record(cli, &args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("switchboard-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What a finished run printed and how it went.
struct Outcome {
    /// Every correctness check passed.
    ok: bool,
    /// The summary as `--json` prints it.
    json: serde_json::Value,
}

/// Runs the command line; with `--record`, writes the record.
fn record(cli: Cli, args: &[String]) -> Result<bool> {
    let path = cli.common.record.clone();
    let outcome = run(cli)?;
    if let Some(path) = path {
        let record = Record {
            argv: compare::recordable_argv(args),
            result: outcome.json,
        };
        record.write(&path)?;
    }
    Ok(outcome.ok)
}

/// `compare`: reruns a recorded command line and prints the ratios.
fn rerun(c: CompareArgs) -> Result<bool> {
    let record = Record::read(&c.file)?;
    let argv = record.rerun_argv(&c.overrides);
    let cli = Cli::try_parse_from(std::iter::once("switchboard-bench".to_owned()).chain(argv))
        .with_context(|| format!("the command line recorded in {}", c.file.display()))?;
    if matches!(cli.scenario, Scenario::Compare(_) | Scenario::Plot(_))
        || cli.common.record.is_some()
    {
        bail!(
            "{}: a recorded command line cannot compare or record again",
            c.file.display()
        );
    }
    let outcome = run(cli)?;
    let rows = compare::compare(&record.result, &outcome.json, c.tolerance);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(compare::render(&rows, c.tolerance).as_bytes())
        .context("writing the comparison")?;
    Ok(outcome.ok)
}

/// `plot`: CSV in, SVG out.
fn plot(p: &PlotArgs) -> Result<()> {
    use switchboard_bench::plot;
    let csv =
        std::fs::read_to_string(&p.csv).with_context(|| format!("reading {}", p.csv.display()))?;
    let series = plot::parse_csv(&csv).with_context(|| p.csv.display().to_string())?;
    let labels = plot::Labels {
        title: p.title.clone(),
        x: p.x_label.clone(),
        y: p.y_label.clone(),
    };
    let doc = plot::svg(&series, &labels, p.log_x)?;
    std::fs::write(&p.out, doc).with_context(|| format!("writing {}", p.out.display()))
}

/// Runs the chosen scenario and prints its summary.
fn run(cli: Cli) -> Result<Outcome> {
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

async fn scenario(cli: Cli) -> Result<Outcome> {
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
            Ok(Outcome {
                ok: true,
                json: serde_json::Value::Null,
            })
        }
        Scenario::Idle(args) => emit(&idle::run(&ctx, args).await?, json),
        Scenario::Churn(args) => emit(&churn::run(&ctx, args).await?, json),
        Scenario::Rtc(args) => emit(&rtc::run(&ctx, args).await?, json),
        Scenario::Pairs(args) => emit(&pairs::run(&ctx, args).await?, json),
        Scenario::Meeting(args) => emit(&meeting::run(&ctx, args).await?, json),
        Scenario::Soak(args) => emit(&soak::run(&ctx, args).await?, json),
        Scenario::Compare(_) | Scenario::Plot(_) => bail!("not a scenario"),
    }
}

/// Prints the summary on stdout; returns whether it passed, and its JSON.
fn emit<S: Summary>(summary: &S, json: bool) -> Result<Outcome> {
    let text = render(summary, json).context("rendering the summary")?;
    let value = if json {
        serde_json::from_str(&text)
    } else {
        serde_json::from_str(&render(summary, true).context("rendering the summary")?)
    }
    .context("reading the summary back")?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("writing the summary")?;
    stdout.flush().context("writing the summary")?;
    Ok(Outcome {
        ok: summary.failures().is_empty(),
        json: value,
    })
}
