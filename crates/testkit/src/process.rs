//! Child processes for tests: the real `switchboard` binary ([`ServerProcess`]),
//! any command bounded in time ([`run_with_timeout`]), and scratch directories ([`TempDir`]).
//!
//! [`ServerProcess`] spawns the binary with arguments or a TOML config, reads its
//! address from its `listening on http://HOST:PORT` line and kills it on drop
//! (printing its output first if the test is failing). It does not inherit
//! `SWITCHBOARD_*` variables: the server reads `SWITCHBOARD_<SECTION>_<KEY>` as
//! config overrides, so a developer's shell would leak into tests; pass them explicitly.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

/// How long a spawned server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `switchboard` binary Cargo built beside the running test executable
/// (`<target>/<profile>/switchboard`; `$SWITCHBOARD_BIN` overrides).
pub fn switchboard_binary() -> PathBuf {
    if let Some(bin) = env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test-binary>
    let bin = exe
        .ancestors()
        .nth(2)
        .map(|profile| profile.join("switchboard"))
        .expect("the test executable lives in <target>/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} does not exist: run the tests with cargo test (which builds it) or set SWITCHBOARD_BIN",
        bin.display()
    );
    bin
}

/// A scratch directory under the system temp dir, removed on drop unless the test is failing
/// (then it is kept, and its path printed, for a post-mortem).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = env::temp_dir().join(format!(
            "switchboard-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("kept scratch directory {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Lines a child printed, both streams interleaved in arrival order (stderr lines marked),
/// with a condition variable signalled on every new line and at the end of each stream.
#[derive(Debug, Default)]
struct LogInner {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct LogState {
    lines: Vec<String>,
    closed_streams: usize,
}

type Log = Arc<LogInner>;

impl LogInner {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        self.lock().lines.push(line);
        self.changed.notify_all();
    }

    fn close_stream(&self) {
        self.lock().closed_streams += 1;
        self.changed.notify_all();
    }

    /// Waits until a line containing `needle` has been printed (returns it), every one of
    /// `streams` streams has ended, or `timeout` passes.
    fn wait_for(&self, needle: &str, streams: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(line) = state.lines.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed_streams >= streams || left.is_zero() {
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn log_lines(log: &Log, last: usize) -> String {
    let state = log.lock();
    let lines = &state.lines;
    let skip = lines.len().saturating_sub(last);
    let mut text = String::new();
    if skip > 0 {
        let _ = writeln!(text, "  … {skip} earlier lines …");
    }
    for line in &lines[skip..] {
        let _ = writeln!(text, "  {line}");
    }
    text
}

/// Reads `stream` line by line into `log` (prefixed by `prefix`), calling `on_line` on each;
/// sends `()` on `done` at end of stream.
fn drain<R: Read + Send + 'static>(
    stream: R,
    prefix: &'static str,
    log: Log,
    done: mpsc::Sender<()>,
    mut on_line: impl FnMut(&str) + Send + 'static,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\r', '\n']);
                    on_line(line);
                    log.push(format!("{prefix}{line}"));
                }
            }
        }
        log.close_stream();
        let _ = done.send(());
    });
}

/// What a bounded child process did.
#[derive(Debug)]
pub struct BoundedOutput {
    /// `None` when it was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub elapsed: Duration,
}

impl BoundedOutput {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// The last `n` lines of stderr, indented, for failure messages.
    pub fn stderr_tail(&self, n: usize) -> String {
        let skip = self.stderr.len().saturating_sub(n);
        self.stderr[skip..]
            .iter()
            .map(|l| format!("  {l}\n"))
            .collect()
    }
}

/// Runs `command` (stdin closed, stdout and stderr collected by line), killing it if it is
/// still running after `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> BoundedOutput {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let (out_log, err_log): (Log, Log) = Default::default();
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    drain(stdout, "", out_log.clone(), done_tx.clone(), |_| {});
    drain(stderr, "", err_log.clone(), done_tx, |_| {});

    // Both streams at end of file means the process is exiting: then `wait` returns promptly.
    let deadline = start + timeout;
    let mut closed = 0;
    while closed < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => closed += 1,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().ok().filter(|_| closed == 2);
    let take = |log: &Log| std::mem::take(&mut log.lock().lines);
    BoundedOutput {
        status,
        stdout: take(&out_log),
        stderr: take(&err_log),
        elapsed: start.elapsed(),
    }
}

/// Messages from a server's stdout reader.
#[derive(Debug)]
enum ServerEvent {
    Listening(SocketAddr),
}

/// A running `switchboard` process. Dropping it kills the process; if the test is failing, its
/// output is printed first.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addrs: Vec<SocketAddr>,
    log: Log,
    exited: Receiver<()>,
    // Holds the config file for the process's lifetime.
    _scratch: Option<TempDir>,
}

/// The address in a `… listening on http://HOST:PORT[/…]` (or `https://`) line.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line
        .split_once("listening on http://")
        .or_else(|| line.split_once("listening on https://"))?;
    let authority = rest.split(|c: char| c == '/' || c.is_whitespace()).next()?;
    authority.parse().ok()
}

impl ServerProcess {
    /// Spawns `switchboard ARGS…` and waits for its first `listening on` line.
    pub fn start<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(args, &[], 1, None)
    }

    /// Like [`start`](Self::start), with extra environment variables (for example
    /// `SWITCHBOARD_<SECTION>_<KEY>` config overrides), waiting for `listeners` listeners.
    pub fn start_with_env<I, S>(args: I, env: &[(&str, &str)], listeners: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(args, env, listeners, None)
    }

    /// Writes `toml` to a scratch file and spawns `switchboard serve --config FILE`, waiting
    /// for `listeners` `listening on` lines.
    pub fn serve_config(toml: &str, listeners: usize) -> Self {
        Self::serve_config_with_env(toml, &[], listeners)
    }

    /// Like [`serve_config`](Self::serve_config), with extra environment variables.
    pub fn serve_config_with_env(toml: &str, env: &[(&str, &str)], listeners: usize) -> Self {
        let scratch = TempDir::new("server");
        let config = scratch.write("switchboard.toml", toml);
        let args = ["serve".as_ref(), "--config".as_ref(), config.as_os_str()];
        Self::spawn(args, env, listeners, Some(scratch))
    }

    fn spawn<I, S>(
        args: I,
        env: &[(&str, &str)],
        listeners: usize,
        scratch: Option<TempDir>,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(switchboard_binary());
        // Hermetic: only the config the test gives, never the developer's or CI's overrides.
        for (name, _) in env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));

        let log = Log::default();
        let (event_tx, events) = mpsc::channel();
        let (exit_tx, exited) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        drain(stdout, "", log.clone(), exit_tx, move |line| {
            if let Some(addr) = parse_listening_line(line) {
                let _ = event_tx.send(ServerEvent::Listening(addr));
            }
        });
        let (stderr_done, _) = mpsc::channel();
        drain(stderr, "[stderr] ", log.clone(), stderr_done, |_| {});

        let mut server = Self {
            child,
            addrs: Vec::new(),
            log,
            exited,
            _scratch: scratch,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while server.addrs.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(ServerEvent::Listening(addr)) => server.addrs.push(addr),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{command:?} printed {} of {listeners} `listening on http://…` lines within {:?}; output:\n{}",
                    server.addrs.len(),
                    STARTUP_TIMEOUT,
                    server.output(200)
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait();
                    panic!(
                        "{command:?} exited ({status:?}) before printing {listeners} `listening on http://…` lines; output:\n{}",
                        server.output(200)
                    );
                }
            }
        }
        server
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listener's address, in the order printed.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `ws://ADDR{path}` on the first listener.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr())
    }

    /// `http://ADDR{path}` on the first listener.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `last` lines the server printed (stderr lines marked `[stderr]`).
    pub fn output(&self, last: usize) -> String {
        log_lines(&self.log, last)
    }

    /// Every line the server printed so far (stderr lines marked `[stderr] `).
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// Waits up to `timeout` for the server to print a line (on stdout or stderr) containing
    /// `needle`, and returns that line; `None` if it exited or the time ran out first.
    /// Lines printed before the call count too.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.log.wait_for(needle, 2, timeout)
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, …) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(
            status.success(),
            "kill -s {name} {} failed: {status}",
            self.pid()
        );
    }

    /// Waits up to `timeout` for the process to exit (its stdout to close); `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        match self.exited.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => self.child.wait().ok(),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let status = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "switchboard (pid {}, {status:?}) output:\n{}",
                self.child.id(),
                self.output(200)
            );
        }
    }
}
