//! External test dependencies (Python modules, commands such as `node` or
//! `chromium` or `nats-server`, PostgreSQL) and the rule for when one is missing.
//!
//! The rule (design §6): a test whose dependency is missing says so loudly on
//! stderr (written past the test harness's capture) and returns early on a
//! developer machine; under `CI=true` (or `CI=1`) it fails. `require_*`
//! returns the thing when it is there and applies the rule when it is not.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use std::{env, thread};

/// Whether missing dependencies must fail the test: `CI` is `true` (any case) or `1`.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Reports that `dependency` is missing: panics under `CI=true`, otherwise prints a banner
/// straight to the process's stderr (so it shows even though the test passes) and returns,
/// letting the caller skip. `install` says how to provide it.
pub fn missing_dependency(dependency: &str, detail: &str, install: &str) {
    let test = thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    let message = format!(
        "test `{test}` needs {dependency}, which is missing: {detail}\n  install it with: {install}"
    );
    if in_ci() {
        panic!("{message}\n  (CI=true: a missing test dependency is a failure)");
    }
    let rule = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED: {message}\n  (set CI=true to make this a failure)\n{rule}"
    );
}

/// Root of the Cargo workspace (where `Cargo.lock` and `scripts/` are).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the one holding the running test
/// executable (`<target>/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Finds `name` on `PATH` (or checks it, if it is a path), as an executable file.
/// `/usr/sbin` and `/sbin` are searched too (Debian puts `nats-server` there).
pub fn find_command(name: &str) -> Option<PathBuf> {
    let is_executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

/// Requires an executable on `PATH` (e.g. `node`, `chromium`); `install` says how to get it.
pub fn require_command(name: &str, install: &str) -> Option<PathBuf> {
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
pub fn python_interpreter() -> Option<PathBuf> {
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
pub fn require_python_module(module: &str) -> Option<PathBuf> {
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
pub fn require_tcp_service(service: &str, addr: &str, install: &str) -> bool {
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
pub fn url_host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// The PostgreSQL server tests use: `$SWITCHBOARD_TEST_POSTGRES_URL` (or the older
/// `$SWITCHBOARD_TEST_PG_URL`), else `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn postgres_server_url() -> String {
    env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .or_else(|_| env::var("SWITCHBOARD_TEST_PG_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// How to provide the test PostgreSQL server, for the banner.
pub const POSTGRES_INSTALL: &str = "apt-get install -y postgresql (trust auth for user postgres on 127.0.0.1:5432), or set SWITCHBOARD_TEST_POSTGRES_URL";

/// Requires PostgreSQL; returns the server's URL (see [`postgres_server_url`]).
pub fn require_postgres() -> Option<String> {
    let url = postgres_server_url();
    require_tcp_service("PostgreSQL", url_host_port(&url), POSTGRES_INSTALL).then_some(url)
}

/// Whether `cmd --version` runs successfully.
pub fn has_command(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
