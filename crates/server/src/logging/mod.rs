//! Logging setup: `tracing` to stderr or an append-only file, as text or JSON,
//! or as MozLog JSON lines on stdout (the channelserver persona's format), and
//! the checks of `[log]` values.
//!
//! Logging never blocks or panics the process: every line goes through a
//! [`Sink`] (bounded queue, background writer, overflow dropped and counted,
//! write errors such as a closed pipe swallowed), and tracing's own error
//! reporting (which prints to stderr and would panic on a closed pipe) is off.
//! Colour codes are used only when the log goes to a terminal.
//! Message bodies and secrets are never logged by any module.

mod mozlog;
pub mod sink;

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogSection;

pub use mozlog::MozLog;
pub use sink::{Sink, Target};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `log.file` could not be opened for appending.
    #[error("cannot open log.file {path}: {source}")]
    File {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `log.level` or `RUST_LOG` is not a filter.
    #[error("invalid value for `{setting}`: {message}")]
    Level {
        /// `log.level` or `RUST_LOG`.
        setting: &'static str,
        /// What is wrong, with the accepted forms.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised: {0}")]
    Installed(String),
}

/// The running log outputs, to flush at exit.
#[derive(Debug, Clone)]
pub struct Logging {
    /// Where log lines go.
    pub log: Sink,
    /// Standard output, for the start-up banner (the log's sink when logs go to stdout).
    pub stdout: Sink,
}

impl Logging {
    /// Writes the start-up banner to standard output without blocking.
    pub fn banner(&self, text: &str) {
        self.stdout.write_line(text.as_bytes().to_vec());
    }

    /// Waits (bounded) for queued lines to be written, so the last lines are not lost at exit.
    pub fn flush(&self) {
        let timeout = Duration::from_millis(500);
        self.log.flush(timeout);
        self.stdout.flush(timeout);
    }
}

/// The level words a filter directive may use.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `log.level` value: comma-separated directives, each a level
/// (`info`) or `TARGET=LEVEL` (`switchboard_edge=debug`). A bare word that is
/// not a level is refused: `tracing` would read it as a target name and turn
/// every other line off, which is never what was meant.
pub fn check_level(value: &str) -> Result<(), String> {
    let accepted = "use a level (trace, debug, info, warn, error, off) or TARGET=LEVEL \
                    directives separated by commas, e.g. \"info\" or \"switchboard_edge=debug,info\"";
    if value.trim().is_empty() {
        return Err(format!("{value:?} is empty; {accepted}"));
    }
    for directive in value.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => "",
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            let within = if directive == value.trim() {
                String::new()
            } else {
                format!(" (in {value:?})")
            };
            return Err(format!(
                "{directive:?}{within} is not a level or TARGET=LEVEL directive; {accepted}"
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|e| format!("{value:?}: {e}; {accepted}"))?;
    Ok(())
}

/// Installs the global subscriber for `cfg`. `app` names the program in MozLog
/// lines (`Logger` is `<app>-<version>`, `Type` is `<app>:log`). `RUST_LOG`, when
/// set and not empty, overrides `log.level` and is checked the same way.
pub fn init(cfg: &LogSection, app: &str) -> Result<Logging, LogError> {
    let (setting, level) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => ("log.level", cfg.level.clone()),
    };
    let bad = |message: String| LogError::Level { setting, message };
    check_level(&level).map_err(bad)?;
    let filter = EnvFilter::try_new(&level).map_err(|e| bad(e.to_string()))?;
    // async-nats reports every connection event itself at info level; the bus logs
    // those it cares about once, with context. Its own lines stay at warn unless
    // the filter names it.
    let filter = if level.contains("async_nats") {
        filter
    } else {
        filter.add_directive("async_nats=warn".parse().map_err(|e| bad(format!("{e}")))?)
    };
    let stdout = Sink::spawn(Target::Stdout);
    let file = (!cfg.file.is_empty()).then_some(&cfg.file);
    let (log, ansi) = match file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LogError::File {
                    path: path.clone(),
                    source,
                })?;
            (Sink::spawn(Target::File(file)), false)
        }
        // MozLog goes to stdout, one object per line, as the original's does.
        None if cfg.format == "mozlog" => (stdout.clone(), false),
        None => (Sink::spawn(Target::Stderr), std::io::stderr().is_terminal()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .log_internal_errors(false)
        .with_writer(log.clone());
    let installed = match cfg.format.as_str() {
        "mozlog" => builder.event_format(MozLog::new(app)).try_init(),
        "json" => builder.json().try_init(),
        _ => builder.try_init(),
    };
    installed.map_err(|e| LogError::Installed(e.to_string()))?;
    Ok(Logging { log, stdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_values() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            "switchboard=debug,info",
            "switchboard_edge::socket=trace, warn",
        ] {
            assert_eq!(check_level(ok), Ok(()), "{ok}");
        }
        for bad in ["loud", "", "info,loud", "=debug", "switchboard=loud"] {
            let e = check_level(bad).expect_err(bad);
            assert!(e.contains("trace, debug, info"), "{bad}: {e}");
        }
        assert!(check_level("loud").unwrap_err().contains("\"loud\""));
    }
}
