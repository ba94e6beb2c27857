//! Shared helpers for the `switchboard` binary's integration tests (std only).
//!
//! - External dependencies (Python modules, commands such as `node` or `chromium`, PostgreSQL,
//!   NATS): `require_*` returns the thing when it is there. When it is missing, a dev machine gets
//!   a loud banner on stderr (written past the test harness's capture) and the test returns early;
//!   under `CI=true` a missing dependency is a test failure, never a silent skip.
//! - [`ServerProcess`]: the real `switchboard` binary, spawned with arguments or a TOML config,
//!   its address read from its `listening on http://HOST:PORT` line, killed on drop. It does
//!   not inherit `SWITCHBOARD_*` variables (the server reads `SWITCHBOARD_<SECTION>_<KEY>` as
//!   config overrides, so a developer's shell would leak into tests): pass them explicitly.
//! - [`run_with_timeout`]: a child process bounded in time, its output collected.
//! - [`TempDir`]: a scratch directory, removed on drop (kept when the test fails).
//!
//! Each test binary includes this with `mod support;` and uses a subset of it.

#![allow(
    dead_code,
    reason = "each integration-test binary uses a different subset of these helpers"
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

/// How long a spawned server may take to print its `listening on` line.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether missing dependencies must fail the test: `CI` is `true` (any case) or `1`.
pub(crate) fn ci() -> bool {
    env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Reports that `dependency` is missing: panics under `CI=true`, otherwise prints a banner
/// straight to the process's stderr (so it shows even though the test passes) and returns,
/// letting the caller skip.
pub(crate) fn missing_dependency(dependency: &str, detail: &str, install: &str) {
    let test = thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    let message = format!(
        "test `{test}` needs {dependency}, which is missing: {detail}\n  install it with: {install}"
    );
    if ci() {
        panic!("{message}\n  (CI=true: a missing test dependency is a failure)");
    }
    let rule = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED: {message}\n  (set CI=true to make this a failure)\n{rule}"
    );
}

/// Root of the Cargo workspace (where `Cargo.lock` and `scripts/` are).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() || dir.join("scripts").is_dir())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the one holding the server binary.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    // CARGO_BIN_EXE_switchboard is <target>/<profile>/switchboard.
    Path::new(server_binary())
        .ancestors()
        .nth(2)
        .map_or_else(|| workspace_root().join("target"), Path::to_path_buf)
}

/// The `switchboard` binary Cargo built for these tests.
pub(crate) fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// Finds `name` on `PATH` (or checks it, if it is a path), as an executable file.
pub(crate) fn find_command(name: &str) -> Option<PathBuf> {
    let is_executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

/// Requires an executable on `PATH` (e.g. `node`, `chromium`); `install` says how to get it.
pub(crate) fn require_command(name: &str, install: &str) -> Option<PathBuf> {
    let found = find_command(name);
    if found.is_none() {
        missing_dependency(
            &format!("the command `{name}`"),
            "not found on PATH",
            install,
        );
    }
    found
}

/// The Python interpreter for tests: `$SWITCHBOARD_PYTHON`, else the venv that
/// `scripts/python-deps.sh` makes (`<target>/pyvenv`), else `python3` on `PATH`.
pub(crate) fn python_interpreter() -> Option<PathBuf> {
    if let Some(python) = env::var_os("SWITCHBOARD_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let venvs = [
        target_dir().join("pyvenv"),
        workspace_root().join("target/pyvenv"),
    ];
    venvs
        .iter()
        .map(|venv| venv.join("bin/python"))
        .find(|python| python.is_file())
        .or_else(|| find_command("python3"))
}

/// Requires a Python interpreter that can `import module`; returns that interpreter.
pub(crate) fn require_python_module(module: &str) -> Option<PathBuf> {
    const INSTALL: &str =
        "bash scripts/python-deps.sh (or point SWITCHBOARD_PYTHON at a python that has it)";
    let dependency = format!("the Python module `{module}`");
    let Some(python) = python_interpreter() else {
        missing_dependency(&dependency, "no Python interpreter found", INSTALL);
        return None;
    };
    let output = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => Some(python),
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("import failed");
            let detail = format!("{} says: {last}", python.display());
            missing_dependency(&dependency, &detail, INSTALL);
            None
        }
        Err(err) => {
            let detail = format!("cannot run {}: {err}", python.display());
            missing_dependency(&dependency, &detail, INSTALL);
            None
        }
    }
}

/// Requires a TCP service that accepts connections at `addr` (`host:port`).
pub(crate) fn require_tcp_service(service: &str, addr: &str, install: &str) -> bool {
    let reachable = addr.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    });
    if !reachable {
        missing_dependency(
            service,
            &format!("nothing accepts connections at {addr}"),
            install,
        );
    }
    reachable
}

/// `host:port` of a URL such as `postgres://user@127.0.0.1:5432/db` or `nats://127.0.0.1:4222`.
pub(crate) fn url_host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Requires PostgreSQL; returns its URL (`$SWITCHBOARD_TEST_POSTGRES_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`).
pub(crate) fn require_postgres() -> Option<String> {
    let url = env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    require_tcp_service(
        "PostgreSQL",
        url_host_port(&url),
        "apt-get install -y postgresql (trust auth on 127.0.0.1), or set SWITCHBOARD_TEST_POSTGRES_URL",
    )
    .then_some(url)
}

/// Requires a NATS server; returns its URL (`$SWITCHBOARD_TEST_NATS_URL`, else
/// `nats://127.0.0.1:4222`).
pub(crate) fn require_nats() -> Option<String> {
    let url = env::var("SWITCHBOARD_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    require_tcp_service(
        "a NATS server",
        url_host_port(&url),
        "run nats-server on 127.0.0.1:4222, or set SWITCHBOARD_TEST_NATS_URL",
    )
    .then_some(url)
}

/// A scratch directory under the system temp dir, removed on drop unless the test is failing
/// (then it is kept, and its path printed, for a post-mortem).
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(label: &str) -> Self {
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

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
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
pub(crate) struct BoundedOutput {
    /// `None` when it was killed for running past its timeout.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: Vec<String>,
    pub(crate) elapsed: Duration,
}

impl BoundedOutput {
    pub(crate) fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// The last `n` lines of stderr, indented, for failure messages.
    pub(crate) fn stderr_tail(&self, n: usize) -> String {
        let skip = self.stderr.len().saturating_sub(n);
        self.stderr[skip..]
            .iter()
            .map(|l| format!("  {l}\n"))
            .collect()
    }
}

/// Runs `command` (stdin closed, stdout and stderr collected by line), killing it if it is
/// still running after `timeout`.
pub(crate) fn run_with_timeout(command: &mut Command, timeout: Duration) -> BoundedOutput {
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
pub(crate) struct ServerProcess {
    child: Child,
    addrs: Vec<SocketAddr>,
    log: Log,
    exited: Receiver<()>,
    // Holds the config file for the process's lifetime.
    _scratch: Option<TempDir>,
}

/// The address in a `… listening on http://HOST:PORT[/…]` line.
pub(crate) fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on http://")?;
    let authority = rest.split(|c: char| c == '/' || c.is_whitespace()).next()?;
    authority.parse().ok()
}

impl ServerProcess {
    /// Spawns `switchboard ARGS…` and waits for its first `listening on` line.
    pub(crate) fn start<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(args, &[], 1, None)
    }

    /// Like [`start`](Self::start), with extra environment variables (for example
    /// `SWITCHBOARD_<SECTION>_<KEY>` config overrides), waiting for `listeners` listeners.
    pub(crate) fn start_with_env<I, S>(args: I, env: &[(&str, &str)], listeners: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(args, env, listeners, None)
    }

    /// Writes `toml` to a scratch file and spawns `switchboard serve --config FILE`, waiting
    /// for `listeners` `listening on` lines.
    pub(crate) fn serve_config(toml: &str, listeners: usize) -> Self {
        let scratch = TempDir::new("server");
        let config = scratch.write("switchboard.toml", toml);
        let args = ["serve".as_ref(), "--config".as_ref(), config.as_os_str()];
        Self::spawn(args, &[], listeners, Some(scratch))
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
        let mut command = Command::new(server_binary());
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
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listener's address, in the order printed.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `ws://ADDR{path}` on the first listener.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr())
    }

    /// `http://ADDR{path}` on the first listener.
    pub(crate) fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `last` lines the server printed (stderr lines marked `[stderr]`).
    pub(crate) fn output(&self, last: usize) -> String {
        log_lines(&self.log, last)
    }

    /// Waits up to `timeout` for the server to print a line (on stdout or stderr) containing
    /// `needle`, and returns that line; `None` if it exited or the time ran out first.
    /// Lines printed before the call count too.
    pub(crate) fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.log.wait_for(needle, 2, timeout)
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, …) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
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
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
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
