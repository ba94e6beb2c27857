//! Where each configuration value came from ([`Provenance`]), and the
//! command-line [`Flags`] of the native commands (`serve`, `config print`,
//! `config check`).
//!
//! Keys are dotted (`server.listen`). A key's source is the last layer that
//! set it: default < file < environment < flag. `switchboard config print`
//! shows it beside every value, and errors name the variable or flag that
//! supplied a bad value.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, ConfigError};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file (its path).
    File(String),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (as typed, e.g. `--listen`).
    Flag(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {p}"),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The source of every key that is not a default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    set: BTreeMap<String, Source>,
}

impl Provenance {
    /// The keys `file` (parsed as `table`) sets.
    pub(crate) fn from_file(file: Option<&Path>, table: &toml::Table) -> Provenance {
        let mut p = Provenance::default();
        if let Some(path) = file {
            let shown = path.display().to_string();
            for (section, v) in table {
                if let toml::Value::Table(keys) = v {
                    for key in keys.keys() {
                        p.set(format!("{section}.{key}"), Source::File(shown.clone()));
                    }
                } else {
                    p.set(section.clone(), Source::File(shown.clone()));
                }
            }
        }
        p
    }

    /// Records that `key` (dotted) came from `source`.
    pub fn set(&mut self, key: String, source: Source) {
        self.set.insert(key, source);
    }

    /// Where `key` (dotted) came from.
    pub fn source(&self, key: &str) -> Source {
        self.set.get(key).cloned().unwrap_or(Source::Default)
    }

    /// `e`, with the bad value as `cfg` holds it (secrets redacted) and
    /// which variable or flag set it.
    pub fn annotate(&self, e: ConfigError, cfg: &Config) -> ConfigError {
        match e {
            ConfigError::Invalid { key, message } => {
                let message = match value_of(cfg, key) {
                    Some(v) if !v.contains(super::print::REDACTED) => {
                        format!("{message}; got {v}")
                    }
                    _ => message,
                };
                let message = match self.source(key) {
                    Source::Env(var) => format!("{message} (set by environment variable {var})"),
                    Source::Flag(flag) => format!("{message} (set by flag {flag})"),
                    Source::File(path) => format!("{message} (in {path})"),
                    Source::Default => message,
                };
                ConfigError::Invalid { key, message }
            }
            other => other,
        }
    }
}

/// The value of dotted `key` in `cfg` as TOML text, secrets redacted.
fn value_of(cfg: &Config, key: &str) -> Option<String> {
    let table = toml::Table::try_from(cfg).ok()?;
    let (section, name) = key.split_once('.')?;
    let value = table.get(section)?.get(name)?;
    Some(super::print::redact(name, &value.to_string()))
}

/// The native commands' flags, the last layer of configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen` (repeatable): replaces `server.listen`.
    pub listen: Vec<String>,
    /// `--ops-listen ADDR|off`: replaces `ops.listen`; `off` turns the ops listener off.
    pub ops_listen: Option<String>,
}

impl Flags {
    /// Applies the flags that were given to `cfg`, recording them in `provenance`.
    pub fn apply(&self, cfg: &mut Config, provenance: &mut Provenance) {
        if !self.listen.is_empty() {
            cfg.server.listen.clone_from(&self.listen);
            provenance.set("server.listen".into(), Source::Flag("--listen".into()));
        }
        if let Some(ops) = &self.ops_listen {
            cfg.ops.listen.clone_from(ops);
            cfg.ops.enabled = true;
            provenance.set("ops.listen".into(), Source::Flag("--ops-listen".into()));
            provenance.set("ops.enabled".into(), Source::Flag("--ops-listen".into()));
        }
    }
}
