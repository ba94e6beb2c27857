//! The scenarios, one module each, and what they share: the run context
//! ([`Ctx`]), how a connection ended ([`End`]), closing politely, and the
//! scenario error type.
//!
//! A scenario is `async fn run(ctx: &Ctx, args: &XArgs) -> Result<XSummary,
//! ScenarioError>` where `XSummary` implements [`crate::report::Summary`];
//! `main` wires arguments, runtime and output around it.

pub mod churn;
pub mod fanout;
pub mod idle;
pub mod meeting;
pub mod pairs;
pub mod rtc;
pub mod soak;
pub mod versus;

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt as _;
use futures_util::StreamExt as _;
use tokio_websockets::{CloseCode, Message};

use crate::cli::CommonArgs;
use crate::net::{Dialer, NetError, Target, WsConn};
use crate::progress::Progress;

/// Why a scenario could not run to its end (as opposed to running and
/// finding a correctness failure, which is part of its summary).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The arguments don't make sense together.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// The target could not be reached at all.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Publishing by POST could not start.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// A process fact could not be read.
    #[error(transparent)]
    Proc(#[from] crate::procfs::ProcError),
    /// A payload could not be built.
    #[error(transparent)]
    Payload(#[from] crate::payload::PayloadError),
    /// A child worker process failed.
    #[error("worker {index}")]
    Worker {
        /// Which worker.
        index: usize,
        /// What went wrong.
        source: crate::worker::WorkerError,
    },
    /// A worker reported something the parent did not expect.
    #[error("worker {index}: expected {expected}")]
    WorkerProtocol {
        /// Which worker.
        index: usize,
        /// The message that should have come.
        expected: &'static str,
    },
    /// Local I/O (stdin/stdout of workers) failed.
    #[error("i/o")]
    Io(#[from] std::io::Error),
}

/// Everything a scenario needs besides its own arguments.
#[derive(Debug)]
pub struct Ctx {
    /// The common options.
    pub common: CommonArgs,
    /// The server and channel from `--url`.
    pub target: Target,
    /// Opens connections to the target.
    pub dialer: Arc<Dialer>,
    /// Live counters for the progress line.
    pub progress: Arc<Progress>,
}

impl Ctx {
    /// Resolves `--url` and prepares the dialer.
    pub async fn new(common: CommonArgs) -> Result<Self, ScenarioError> {
        let target = Target::resolve(&common.url).await?;
        let dialer = Dialer::new(&target, common.sources, common.connect_timeout())
            .with_recv_buffer(common.recv_buffer);
        let dialer = Arc::new(dialer);
        Ok(Self {
            common,
            target,
            dialer,
            progress: Arc::new(Progress::default()),
        })
    }
}

/// How a connection's reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It got everything it waited for.
    Done,
    /// The bench stopped it (drain timeout or end of the run).
    Stopped,
    /// The server sent a Close frame with this code.
    Closed(u16),
    /// The stream ended without a Close frame.
    Eof,
    /// Reading failed.
    Error(String),
}

impl End {
    /// True if the server (or the network) ended the connection.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, End::Closed(_) | End::Eof | End::Error(_))
    }

    /// The label disconnects are counted under: `close 1013`, `eof`,
    /// `error: …`.
    pub fn label(&self) -> String {
        match self {
            End::Done => "done".to_owned(),
            End::Stopped => "stopped".to_owned(),
            End::Closed(code) => format!("close {code}"),
            End::Eof => "eof".to_owned(),
            End::Error(e) => format!("error: {e}"),
        }
    }

    /// The end that a received non-data message or error means, if any.
    pub fn from_message(message: &Message) -> Option<End> {
        message
            .as_close()
            .map(|(code, _reason)| End::Closed(u16::from(code)))
    }

    /// The end a read error means.
    pub fn from_error(error: &tokio_websockets::Error) -> End {
        match error {
            tokio_websockets::Error::Io(e) => End::Error(crate::net::io_kind(e)),
            tokio_websockets::Error::Protocol(e) => End::Error(format!("protocol: {e}")),
            other => End::Error(other.to_string()),
        }
    }
}

/// The next text message on `rx`, skipping pings, pongs and binary frames;
/// or how the connection ended (`End::Stopped` when nothing arrived for
/// `idle`). The returned message is always text.
pub async fn next_text<S>(rx: &mut S, idle: Duration) -> Result<Message, End>
where
    S: futures_util::Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(idle, rx.next()).await {
            Err(_) => return Err(End::Stopped),
            Ok(None) => return Err(End::Eof),
            Ok(Some(Err(e))) => return Err(End::from_error(&e)),
            Ok(Some(Ok(m))) => {
                if let Some(end) = End::from_message(&m) {
                    return Err(end);
                }
                if m.is_text() {
                    return Ok(m);
                }
            }
        }
    }
}

/// Sends a Close 1000 and waits up to `timeout` for the server's Close reply
/// (or the end of the stream). Errors are ignored: the connection is being
/// dropped anyway.
pub async fn close_politely(ws: &mut WsConn, timeout: Duration) {
    let close = async {
        if ws
            .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(timeout, close).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_labels() {
        assert_eq!(End::Closed(1013).label(), "close 1013");
        assert!(End::Closed(1013).is_disconnect());
        assert!(End::Eof.is_disconnect());
        assert!(!End::Done.is_disconnect());
        assert!(!End::Stopped.is_disconnect());
        let close = Message::close(Some(CloseCode::SERVICE_OVERLOAD), "slow");
        assert_eq!(End::from_message(&close), Some(End::Closed(1013)));
        assert_eq!(End::from_message(&Message::text("x")), None);
    }
}
