//! External test dependencies: PostgreSQL, NATS, python modules, node, chromium.
//!
//! The rule: a test whose dependency is missing says so loudly on stderr and
//! passes on a developer machine, but fails when `CI=true`.

/// Whether we run under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing dependency: panics under CI, otherwise prints a loud
/// notice and returns `false` so the caller can return early.
pub fn missing(test: &str, what: &str) -> bool {
    let msg = format!(
        "{test}: SKIPPED — {what} is not available. Install it, or run .ci/run; with CI=true this is a failure."
    );
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! {msg}\n");
    false
}

/// Whether `cmd --version` runs successfully.
pub fn has_command(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
