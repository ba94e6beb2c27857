//! Logging setup: `tracing` to stderr or an append-only file, as text or JSON.
//! Message bodies and secrets are never logged by any module.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogSection;

/// Installs the global subscriber. Errors if the log file cannot be opened.
pub fn init(cfg: &LogSection) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&cfg.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let json = cfg.format == "json";
    match &cfg.file {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let b = builder.with_ansi(false).with_writer(Mutex::new(file));
            if json { b.json().try_init() } else { b.try_init() }
        }
        None => {
            let b = builder.with_writer(std::io::stderr);
            if json { b.json().try_init() } else { b.try_init() }
        }
    }
    .map_err(|e| anyhow::anyhow!("logging: {e}"))
}
