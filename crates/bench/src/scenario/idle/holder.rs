//! Where a share of the connections lives: a [`Holder`] is either a
//! [`Shard`] in this process or a child process of the bench holding one,
//! driven by [`ToWorker`] / [`FromWorker`] lines (see [`crate::worker`]).
//! [`run_worker`] is the child's side.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shard::{Plan, Shard};
use crate::cli::{CommonArgs, IdleArgs, PublishMode, secs};
use crate::procfs;
use crate::scenario::{Ctx, ScenarioError};
use crate::stats::Tally;
use crate::worker::{Worker, WorkerError, WorkerPipe};

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ToWorker {
    /// Publish (leaders, in `ws` mode) and wait for the verification messages.
    Verify,
    /// Report and close every connection.
    Finish,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum FromWorker {
    /// The share is connected.
    Connected {
        /// Connections made.
        ok: u64,
        /// Failures by kind.
        errors: Tally,
    },
    /// Verification finished (or timed out).
    Verified {
        /// Connections that got their message.
        received: u64,
        /// Other text messages.
        unexpected: u64,
        /// The worker's VmRSS in bytes.
        rss_bytes: u64,
    },
    /// The share is about to close.
    Finished {
        /// Connections still open.
        alive: u64,
        /// Disconnects by close code or kind.
        disconnects: Tally,
    },
}

/// What verification found in one holder.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Verified {
    /// Connections that got their message.
    pub(super) received: u64,
    /// Other text messages.
    pub(super) unexpected: u64,
    /// The holding process's VmRSS in bytes (this process for a local shard).
    pub(super) rss_bytes: u64,
}

/// A share of the connections.
#[derive(Debug)]
pub(super) enum Holder {
    /// Held in this process; the connect results are kept for [`Holder::connected`].
    Local {
        /// The connections.
        shard: Shard,
        /// Connections made.
        ok: u64,
        /// Failures by kind.
        errors: Tally,
    },
    /// Held by a child process.
    Child {
        /// Which child (for errors).
        index: usize,
        /// The child.
        worker: Box<Worker>,
    },
}

fn worker_err(index: usize) -> impl Fn(WorkerError) -> ScenarioError {
    move |source| ScenarioError::Worker { index, source }
}

fn unexpected(index: usize, expected: &'static str) -> ScenarioError {
    ScenarioError::WorkerProtocol { index, expected }
}

/// Generous time for a worker step that has its own internal timeout.
fn worker_step(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(30)
}

impl Holder {
    /// Connects connections `first .. first + count` in this process.
    pub(super) async fn local(ctx: &Ctx, plan: &Plan, first: u64, count: u64) -> Self {
        let (shard, ok, errors) = Shard::connect(ctx, plan, first, count).await;
        Holder::Local { shard, ok, errors }
    }

    /// Starts a child that connects `first .. first + count`.
    pub(super) fn child(
        index: usize,
        ctx: &Ctx,
        args: &IdleArgs,
        channels: u64,
        first: u64,
        count: u64,
    ) -> Result<Self, ScenarioError> {
        let argv = worker_args(&ctx.common, args, channels, first, count);
        let worker = Worker::spawn(&argv).map_err(worker_err(index))?;
        Ok(Holder::Child {
            index,
            worker: Box::new(worker),
        })
    }

    /// Waits until the share is connected; returns connections made and
    /// failures.
    pub(super) async fn connected(
        &mut self,
        timeout: Duration,
    ) -> Result<(u64, Tally), ScenarioError> {
        match self {
            Holder::Local { ok, errors, .. } => Ok((*ok, errors.clone())),
            Holder::Child { index, worker } => {
                match worker.recv(timeout).await.map_err(worker_err(*index))? {
                    FromWorker::Connected { ok, errors } => Ok((ok, errors)),
                    _ => Err(unexpected(*index, "connected")),
                }
            }
        }
    }

    /// Lets the share's leaders publish.
    pub(super) async fn start_verify(&mut self) -> Result<(), ScenarioError> {
        match self {
            Holder::Local { shard, .. } => {
                shard.start_verify();
                Ok(())
            }
            Holder::Child { index, worker } => worker
                .send(&ToWorker::Verify)
                .await
                .map_err(worker_err(*index)),
        }
    }

    /// Waits up to `timeout` for every connection's message.
    pub(super) async fn verified(&mut self, timeout: Duration) -> Result<Verified, ScenarioError> {
        match self {
            Holder::Local { shard, .. } => {
                let (received, unexpected) = shard.wait_verified(timeout).await;
                let rss_bytes = procfs::own_rss_bytes().await?;
                Ok(Verified {
                    received,
                    unexpected,
                    rss_bytes,
                })
            }
            Holder::Child { index, worker } => {
                match worker
                    .recv(worker_step(timeout))
                    .await
                    .map_err(worker_err(*index))?
                {
                    FromWorker::Verified {
                        received,
                        unexpected,
                        rss_bytes,
                    } => Ok(Verified {
                        received,
                        unexpected,
                        rss_bytes,
                    }),
                    _ => Err(unexpected(*index, "verified")),
                }
            }
        }
    }

    /// Closes every connection; returns how many were still open and the
    /// disconnects seen.
    pub(super) async fn finish(self) -> Result<(u64, Tally), ScenarioError> {
        match self {
            Holder::Local { shard, .. } => Ok(shard.finish().await),
            Holder::Child { index, mut worker } => {
                worker
                    .send(&ToWorker::Finish)
                    .await
                    .map_err(worker_err(index))?;
                let result = match worker
                    .recv(worker_step(Duration::ZERO))
                    .await
                    .map_err(worker_err(index))?
                {
                    FromWorker::Finished { alive, disconnects } => (alive, disconnects),
                    _ => return Err(unexpected(index, "finished")),
                };
                worker
                    .wait(Duration::from_secs(30))
                    .await
                    .map_err(worker_err(index))?;
                Ok(result)
            }
        }
    }
}

/// The command line of a worker holding `count` connections from `first`.
pub(super) fn worker_args(
    common: &CommonArgs,
    args: &IdleArgs,
    channels: u64,
    first: u64,
    count: u64,
) -> Vec<String> {
    let publish = match args.publish {
        PublishMode::Ws => "ws",
        PublishMode::Post => "post",
    };
    [
        "idle",
        "--worker",
        "--json",
        "--threads",
        "1",
        "--url",
        &common.url,
        "--sources",
        &common.sources.to_string(),
        "--connect-concurrency",
        &common.connect_concurrency.to_string(),
        "--connect-timeout",
        &common.connect_timeout.to_string(),
        "--timeout",
        &common.timeout.to_string(),
        "--connections",
        &count.to_string(),
        "--first-index",
        &first.to_string(),
        "--channels",
        &channels.to_string(),
        "--publish",
        publish,
        "--verify-timeout",
        &args.verify_timeout.to_string(),
        "--per-process",
        &count.to_string(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Runs as a worker: holds `--connections` from `--first-index`, driven by
/// the parent over stdin/stdout.
pub async fn run_worker(ctx: &Ctx, args: &IdleArgs) -> Result<(), ScenarioError> {
    let plan = Plan {
        target: ctx.target.clone(),
        channels: args.channels,
        leaders_publish: args.publish == PublishMode::Ws,
    };
    let io_err = worker_err(0);
    let mut pipe = WorkerPipe::default();
    let (shard, ok, errors) = Shard::connect(ctx, &plan, args.first_index, args.connections).await;
    pipe.send(&FromWorker::Connected { ok, errors })
        .await
        .map_err(&io_err)?;
    loop {
        match pipe.recv::<ToWorker>().await {
            Ok(ToWorker::Verify) => {
                shard.start_verify();
                let (received, unexpected) = shard.wait_verified(secs(args.verify_timeout)).await;
                let rss_bytes = procfs::own_rss_bytes().await?;
                pipe.send(&FromWorker::Verified {
                    received,
                    unexpected,
                    rss_bytes,
                })
                .await
                .map_err(&io_err)?;
            }
            Ok(ToWorker::Finish) | Err(WorkerError::Closed) => {
                let (alive, disconnects) = shard.finish().await;
                // The parent may be gone already; nothing else to tell it.
                let _ = pipe
                    .send(&FromWorker::Finished { alive, disconnects })
                    .await;
                return Ok(());
            }
            Err(e) => return Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_messages_are_tagged_lines() {
        let line = serde_json::to_string(&FromWorker::Verified {
            received: 3,
            unexpected: 0,
            rss_bytes: 10,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"verified","received":3,"unexpected":0,"rss_bytes":10}"#
        );
        let back: ToWorker = serde_json::from_str(r#"{"type":"finish"}"#).unwrap();
        assert!(matches!(back, ToWorker::Finish));
    }

    #[test]
    fn worker_command_line_parses() {
        use clap::Parser as _;
        let cli =
            crate::cli::Cli::try_parse_from(["switchboard-bench", "idle", "--distinct"]).unwrap();
        let crate::cli::Scenario::Idle(args) = cli.scenario else {
            panic!("not idle")
        };
        let argv = worker_args(&cli.common, &args, 15_000, 18_000, 9_000);
        let child = crate::cli::Cli::try_parse_from(
            std::iter::once("switchboard-bench".to_owned()).chain(argv),
        )
        .unwrap();
        let crate::cli::Scenario::Idle(child_args) = child.scenario else {
            panic!("not idle")
        };
        assert!(child_args.worker && child.common.json);
        assert_eq!(
            (
                child_args.connections,
                child_args.first_index,
                child_args.channels
            ),
            (9_000, 18_000, 15_000)
        );
    }
}
