//! `fanout --bare-url`: the same fan-out against switchboard and against the
//! bare broadcast (`bare-broadcast`, the machine's practical ceiling), in one
//! invocation, and pubsub's rate as a share of the bare one.
//!
//! The runs alternate (`--rounds` pairs; odd rounds start with the bare
//! server) so a drift in the machine's load hits both sides alike. A run is
//! *lossless* when it passed every correctness check and no connection was
//! ended by the server; the reported ratio is the median deliveries/s of the
//! lossless pubsub runs over that of the lossless bare runs (none when either
//! side has no lossless run).

use std::sync::Arc;

use serde::Serialize;

use super::fanout::{self, FanoutSummary};
use super::{Ctx, ScenarioError};
use crate::cli::FanoutArgs;
use crate::net::{Dialer, Target};
use crate::report::{Lines, Summary, fmt_latency, fmt_rate};

/// One fan-out run of either side.
#[derive(Debug, Serialize)]
pub struct Run {
    /// `pubsub` or `bare`.
    pub server: &'static str,
    /// Round number, from 1.
    pub round: u64,
    /// Whether the run passed and no connection was ended by the server.
    pub lossless: bool,
    /// The run's full summary.
    pub summary: FanoutSummary,
}

/// The result of `fanout --bare-url`.
#[derive(Debug, Serialize)]
pub struct VersusSummary {
    /// Every run in the order it ran.
    pub runs: Vec<Run>,
    /// Median deliveries/s of the lossless pubsub runs.
    pub pubsub_lossless_per_sec: Option<f64>,
    /// Median deliveries/s of the lossless bare runs.
    pub bare_lossless_per_sec: Option<f64>,
    /// `pubsub_lossless_per_sec / bare_lossless_per_sec`.
    pub ratio: Option<f64>,
}

impl Summary for VersusSummary {
    fn scenario(&self) -> &'static str {
        "fanout"
    }

    /// The pubsub runs' failures (the bare server is the yardstick, not under test).
    fn failures(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| r.server == "pubsub")
            .flat_map(|r| {
                r.summary
                    .failures()
                    .into_iter()
                    .map(move |f| format!("round {}: {f}", r.round))
            })
            .collect()
    }

    fn human(&self, out: &mut Lines) {
        for r in &self.runs {
            let s = &r.summary;
            let cpu = s
                .cpu
                .iter()
                .map(|c| format!(", cpu {:.2} s", c.cpu_secs))
                .collect::<String>();
            out.kv(
                &format!("{} #{}", r.server, r.round),
                format!(
                    "{} {} ({} lost, {} disconnects{cpu}), {}",
                    fmt_rate(s.deliveries_per_sec),
                    if r.lossless { "lossless" } else { "LOSSY" },
                    s.order.lost,
                    s.disconnects.total(),
                    fmt_latency(&s.latency)
                ),
            );
        }
        let rate = |v: Option<f64>| v.map_or_else(|| "no lossless run".to_owned(), fmt_rate);
        out.kv("pubsub lossless", rate(self.pubsub_lossless_per_sec));
        out.kv("bare lossless", rate(self.bare_lossless_per_sec));
        out.kv(
            "ratio",
            self.ratio
                .map_or_else(|| "n/a".to_owned(), |r| format!("{:.1} %", r * 100.0)),
        );
    }
}

/// The median of `values` (none when empty).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Runs `fanout` against `--url` and `bare_url`, `--rounds` times each.
pub async fn run(
    ctx: &Ctx,
    args: &FanoutArgs,
    bare_url: &str,
) -> Result<VersusSummary, ScenarioError> {
    let bare_target = Target::resolve(bare_url).await?;
    let bare_dialer = Dialer::new(
        &bare_target,
        ctx.common.sources,
        ctx.common.connect_timeout(),
    )
    .with_recv_buffer(ctx.common.recv_buffer);
    let mut bare_common = ctx.common.clone();
    bare_common.url = bare_url.to_owned();
    let bare_ctx = Ctx {
        common: bare_common,
        target: bare_target,
        dialer: Arc::new(bare_dialer),
        progress: ctx.progress.clone(),
    };
    let mut pubsub_args = args.clone();
    pubsub_args.bare_url = None;
    let mut bare_args = pubsub_args.clone();
    bare_args.cpu_pids = args.bare_pids.clone();
    bare_args.subscriber_urls = Vec::new();

    let mut runs = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let order: [bool; 2] = if round % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for bare in order {
            let summary = if bare {
                fanout::run(&bare_ctx, &bare_args).await?
            } else {
                fanout::run(ctx, &pubsub_args).await?
            };
            let lossless = summary.failures().is_empty() && summary.disconnects.is_empty();
            runs.push(Run {
                server: if bare { "bare" } else { "pubsub" },
                round,
                lossless,
                summary,
            });
        }
    }
    let lossless = |server: &str| {
        median(
            runs.iter()
                .filter(|r| r.server == server && r.lossless)
                .map(|r| r.summary.deliveries_per_sec)
                .collect(),
        )
    };
    let pubsub = lossless("pubsub");
    let bare = lossless("bare");
    Ok(VersusSummary {
        ratio: pubsub
            .zip(bare)
            .map(|(p, b)| if b > 0.0 { p / b } else { 0.0 }),
        pubsub_lossless_per_sec: pubsub,
        bare_lossless_per_sec: bare,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(Vec::new()), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
