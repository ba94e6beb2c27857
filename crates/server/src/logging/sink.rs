//! [`Sink`]: where log lines and the start-up banner go without ever blocking
//! or panicking the process.
//!
//! Writers (any thread, any task) hand complete lines to a bounded queue with
//! `try_send`; one background thread writes them to stdout, stderr or a file.
//! Overflow policy: when the queue is full (the reader of our pipe is slow or
//! stopped) the line is dropped and counted (`switchboard_log_lines_dropped_total`).
//! A write error (the reader has gone: `EPIPE`) is not an error for the process:
//! the thread keeps draining and discarding, so shutdown works whatever happened
//! to stdout and stderr. `flush` waits a bounded time for what is queued.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines a sink holds before it drops new ones.
pub const QUEUE_LINES: usize = 8192;

/// Where a sink writes.
#[derive(Debug)]
pub enum Target {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// An append-only file.
    File(File),
}

enum Item {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// A cheap handle to a background line writer; see the module docs.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: SyncSender<Item>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    dropped: AtomicU64,
    broken: AtomicBool,
}

impl Sink {
    /// Starts the writer thread for `target`.
    pub fn spawn(target: Target) -> Sink {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let state = Arc::new(State::default());
        let thread_state = state.clone();
        let name = match &target {
            Target::Stdout => "log-stdout",
            Target::Stderr => "log-stderr",
            Target::File(_) => "log-file",
        };
        // If the thread cannot start, lines are dropped and counted: logging never stops the server.
        let _ = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || write_loop(target, rx, &thread_state));
        Sink { tx, state }
    }

    /// Queues `bytes` (one or more complete lines). Never blocks.
    pub fn write_line(&self, bytes: Vec<u8>) {
        match self.tx.try_send(Item::Line(bytes)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchboard_log_lines_dropped_total").increment(1);
            }
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Whether a write failed (the reader went away); later lines are discarded.
    pub fn is_broken(&self) -> bool {
        self.state.broken.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` until everything queued before the call is written
    /// (or discarded). Returns whether it got there in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.try_send(Item::Flush(done_tx)).is_err() {
            return false;
        }
        done_rx.recv_timeout(timeout).is_ok()
    }
}

fn write_loop(target: Target, rx: Receiver<Item>, state: &State) {
    let mut out: Box<dyn Write> = match target {
        Target::Stdout => Box::new(std::io::stdout()),
        Target::Stderr => Box::new(std::io::stderr()),
        Target::File(f) => Box::new(f),
    };
    while let Ok(item) = rx.recv() {
        match item {
            Item::Line(bytes) => {
                if state.broken.load(Ordering::Relaxed) {
                    continue;
                }
                if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                    // The reader is gone (EPIPE) or the disk is full: keep draining, write nothing.
                    state.broken.store(true, Ordering::Relaxed);
                }
            }
            Item::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// One event's bytes, sent to the sink when the formatter is done with it.
#[derive(Debug)]
pub struct SinkWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.sink.write_line(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

impl Drop for SinkWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter {
            sink: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_closed_pipe_neither_blocks_nor_panics() {
        // A pipe whose reader is closed at once: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let sink = Sink::spawn(Target::File(File::from(std::os::fd::OwnedFd::from(writer))));
        for i in 0..100 {
            sink.write_line(format!("line {i}\n").into_bytes());
        }
        assert!(
            sink.flush(Duration::from_secs(5)),
            "the writer thread drained"
        );
        assert!(sink.is_broken());
    }

    #[test]
    fn a_stalled_reader_makes_lines_drop_not_block() {
        // Nobody reads: the pipe fills (64 KiB), then the queue, then lines are dropped.
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let sink = Sink::spawn(Target::File(File::from(std::os::fd::OwnedFd::from(writer))));
        let line = vec![b'x'; 1023];
        let started = std::time::Instant::now();
        for _ in 0..(QUEUE_LINES + 200) {
            let mut l = line.clone();
            l.push(b'\n');
            sink.write_line(l);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes never block"
        );
        assert!(sink.dropped() > 0, "overflow drops lines");
        let mut first = [0u8; 1024];
        reader
            .read_exact(&mut first)
            .expect("the first line arrives");
        assert_eq!(first[1023], b'\n');
    }
}
