//! Child processes of the bench, for runs that need more connections than
//! one process may open (the open-file limit).
//!
//! The parent starts `current_exe() <scenario> --worker …` with piped stdin
//! and stdout ([`Worker`]); the child talks back with [`WorkerPipe`]. Both
//! directions carry one JSON value per line, typed by the scenario. The
//! child's stderr is the parent's, so its errors show up as they happen.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Why talking to a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The executable could not be found or started.
    #[error("spawn: {0}")]
    Spawn(std::io::Error),
    /// Reading or writing a pipe failed.
    #[error("pipe")]
    Io(#[from] std::io::Error),
    /// A line was not the expected JSON.
    #[error("bad message {line:?}")]
    Json {
        /// The line received.
        line: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A value could not be encoded.
    #[error("encode: {0}")]
    Encode(serde_json::Error),
    /// The other side closed its pipe.
    #[error("pipe closed")]
    Closed,
    /// No message within the time allowed.
    #[error("timed out")]
    Timeout,
}

/// The parent's handle on one child process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Starts this executable with `args`.
    pub fn spawn(args: &[String]) -> Result<Self, WorkerError> {
        let exe = std::env::current_exe().map_err(WorkerError::Spawn)?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(WorkerError::Spawn)?;
        let stdin = child.stdin.take().ok_or(WorkerError::Closed)?;
        let stdout = child.stdout.take().ok_or(WorkerError::Closed)?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
        })
    }

    /// Sends one message.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WorkerError> {
        let stdin = self.stdin.as_mut().ok_or(WorkerError::Closed)?;
        write_line(stdin, message).await
    }

    /// Waits up to `timeout` for the next message.
    pub async fn recv<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, WorkerError> {
        tokio::time::timeout(timeout, read_line(&mut self.stdout))
            .await
            .map_err(|_| WorkerError::Timeout)?
    }

    /// Closes the child's stdin and waits up to `timeout` for it to exit;
    /// kills it if it does not.
    pub async fn wait(mut self, timeout: Duration) -> Result<ExitStatus, WorkerError> {
        drop(self.stdin.take());
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                Err(WorkerError::Timeout)
            }
        }
    }
}

/// The child's side: its own stdin and stdout.
#[derive(Debug)]
pub struct WorkerPipe {
    stdin: Lines<BufReader<tokio::io::Stdin>>,
    stdout: tokio::io::Stdout,
}

impl Default for WorkerPipe {
    fn default() -> Self {
        Self {
            stdin: BufReader::new(tokio::io::stdin()).lines(),
            stdout: tokio::io::stdout(),
        }
    }
}

impl WorkerPipe {
    /// Sends one message to the parent.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WorkerError> {
        write_line(&mut self.stdout, message).await
    }

    /// Waits for the parent's next message; [`WorkerError::Closed`] when
    /// the parent is gone.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, WorkerError> {
        read_line(&mut self.stdin).await
    }
}

async fn write_line<W, T>(out: &mut W, message: &T) -> Result<(), WorkerError>
where
    W: AsyncWriteExt + Unpin,
    T: Serialize,
{
    let mut line = serde_json::to_vec(message).map_err(WorkerError::Encode)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

async fn read_line<R, T>(lines: &mut Lines<R>) -> Result<T, WorkerError>
where
    R: AsyncBufReadExt + Unpin,
    T: DeserializeOwned,
{
    let line = lines.next_line().await?.ok_or(WorkerError::Closed)?;
    serde_json::from_str(&line).map_err(|source| WorkerError::Json { line, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_round_trip() {
        let (reader, mut writer) = tokio::io::duplex(1024);
        let mut lines = BufReader::new(reader).lines();
        write_line(&mut writer, &serde_json::json!({"type": "hello", "n": 3}))
            .await
            .unwrap();
        let value: serde_json::Value = read_line(&mut lines).await.unwrap();
        assert_eq!(value["n"], 3);
        drop(writer);
        let end: Result<serde_json::Value, _> = read_line(&mut lines).await;
        assert!(matches!(end, Err(WorkerError::Closed)));
    }
}
