//! Connections held by one process: which channel each joins ([`Plan`]),
//! connecting a range of them ([`Shard::connect`]), the per-connection task
//! ([`hold`]) that answers pings, publishes its channel's verification
//! message if it is the channel's leader, and checks that it received it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_websockets::Message;

use crate::net::{NetError, Target, WsConn, connect_many};
use crate::progress::Progress;
use crate::scenario::{Ctx, End, close_politely};
use crate::stats::Tally;

/// Which channel each connection joins and how channels are verified.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The URL the channels derive from.
    pub(super) target: Target,
    /// How many channels there are.
    pub(super) channels: u64,
    /// Whether each channel's first connection publishes its message.
    pub(super) leaders_publish: bool,
}

impl Plan {
    /// The channel connection `index` joins.
    pub(super) fn channel_of(&self, index: u64) -> u64 {
        index % self.channels
    }

    /// The WebSocket URL of `channel`.
    pub(super) fn uri(&self, channel: u64) -> Result<Uri, NetError> {
        if self.channels == 1 {
            Ok(self.target.uri().clone())
        } else {
            self.target.channel(&channel.to_string())
        }
    }

    /// The verification message of `channel`.
    pub(super) fn message(channel: u64) -> String {
        format!("idle-verify-{channel}")
    }
}

#[derive(Debug, Default)]
struct ShardState {
    verified: AtomicU64,
    unexpected: AtomicU64,
    disconnected: AtomicU64,
    disconnects: Mutex<Tally>,
}

/// Connections held by this process.
#[derive(Debug)]
pub(super) struct Shard {
    state: Arc<ShardState>,
    tasks: Vec<JoinHandle<End>>,
    go: watch::Sender<bool>,
    cancel: CancellationToken,
    connected: u64,
}

impl Shard {
    /// Connects connections `first .. first + count`.
    pub(super) async fn connect(
        ctx: &Ctx,
        plan: &Plan,
        first: u64,
        count: u64,
    ) -> (Self, u64, Tally) {
        let state = Arc::new(ShardState::default());
        let (go, go_rx) = watch::channel(false);
        let cancel = CancellationToken::new();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let progress = ctx.progress.clone();
        let summary = connect_many(
            count,
            ctx.common.connect_concurrency(),
            |i| {
                let index = first + i;
                let channel = plan.channel_of(index);
                let uri = plan.uri(channel);
                let leader = plan.leaders_publish && index < plan.channels;
                let dialer = ctx.dialer.clone();
                let (state, go, cancel, tasks, progress) = (
                    state.clone(),
                    go_rx.clone(),
                    cancel.clone(),
                    tasks.clone(),
                    progress.clone(),
                );
                async move {
                    let (ws, handshake) = dialer.websocket(&uri?).await?;
                    let expected = Plan::message(channel);
                    let task =
                        tokio::spawn(hold(ws, expected, leader, go, state, cancel, progress));
                    tasks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(task);
                    Ok(handshake)
                }
            },
            |ok| {
                Progress::add(
                    if ok {
                        &progress.connected
                    } else {
                        &progress.connect_failed
                    },
                    1,
                )
            },
        )
        .await;
        let tasks = std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let shard = Self {
            state,
            tasks,
            go,
            cancel,
            connected: summary.ok,
        };
        (shard, summary.ok, summary.errors)
    }

    /// Lets leaders publish their channel's message.
    pub(super) fn start_verify(&self) {
        self.go.send_replace(true);
    }

    /// Waits until every connection got its message or is gone, or `timeout`.
    pub(super) async fn wait_verified(&self, timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        loop {
            let verified = self.state.verified.load(Ordering::Relaxed);
            let gone = self.state.disconnected.load(Ordering::Relaxed);
            if verified + gone >= self.connected || Instant::now() >= deadline {
                return (verified, self.state.unexpected.load(Ordering::Relaxed));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes every connection; returns how many were still open and the
    /// disconnects seen.
    pub(super) async fn finish(self) -> (u64, Tally) {
        let alive = self.connected - self.state.disconnected.load(Ordering::Relaxed);
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let disconnects = self
            .state
            .disconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (alive, disconnects)
    }
}

/// One held connection: answers pings (by reading), publishes once if it is
/// its channel's leader, and checks for its channel's message.
async fn hold(
    mut ws: WsConn,
    expected: String,
    leader: bool,
    mut go: watch::Receiver<bool>,
    state: Arc<ShardState>,
    cancel: CancellationToken,
    progress: Arc<Progress>,
) -> End {
    let mut waiting_to_send = leader;
    let mut got = false;
    let end = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break End::Stopped,
            go_ahead = async { go.wait_for(|go| *go).await.is_ok() }, if waiting_to_send => {
                waiting_to_send = false;
                if go_ahead {
                    if let Err(e) = ws.send(Message::text(expected.clone())).await {
                        break End::from_error(&e);
                    }
                    Progress::add(&progress.sent, 1);
                }
            }
            item = ws.next() => match item {
                None => break End::Eof,
                Some(Err(e)) => break End::from_error(&e),
                Some(Ok(message)) => {
                    if let Some(end) = End::from_message(&message) {
                        break end;
                    }
                    if message.is_text() {
                        Progress::add(&progress.received, 1);
                        if !got && message.as_payload()[..] == *expected.as_bytes() {
                            got = true;
                            state.verified.fetch_add(1, Ordering::Relaxed);
                        } else {
                            state.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            },
        }
    };
    if end.is_disconnect() {
        state.disconnected.fetch_add(1, Ordering::Relaxed);
        Progress::add(&progress.disconnected, 1);
        state
            .disconnects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(end.label());
    } else {
        close_politely(&mut ws, Duration::from_secs(2)).await;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plan_assigns_channels() {
        let target = Target::resolve("ws://127.0.0.1:8199/pubsub/bench")
            .await
            .unwrap();
        let one = Plan {
            target: target.clone(),
            channels: 1,
            leaders_publish: true,
        };
        assert_eq!(
            one.uri(one.channel_of(5)).unwrap().to_string(),
            "ws://127.0.0.1:8199/pubsub/bench"
        );
        let many = Plan {
            target,
            channels: 3,
            leaders_publish: true,
        };
        assert_eq!(many.channel_of(7), 1);
        assert_eq!(
            many.uri(1).unwrap().to_string(),
            "ws://127.0.0.1:8199/pubsub/bench/1"
        );
        assert_eq!(Plan::message(1), "idle-verify-1");
    }
}
