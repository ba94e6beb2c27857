//! `[store]`: where state that must outlive the process is kept, shared by
//! every service that needs it (today the rtc service's registered names).
//!
//! `url` empty (the default) means a SQLite file named `switchboard.sqlite3`
//! next to the configuration file, or in the working directory when there is
//! no configuration file (the personas). Any other value is passed to
//! `switchboard_store::open` as is: `sqlite:PATH`, a plain path (relative to
//! the working directory), or `postgres://…` for several nodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use switchboard_store::StoreOptions;

use super::{ConfigError, invalid};

/// The file name of the default SQLite store.
pub(crate) const DEFAULT_FILE: &str = "switchboard.sqlite3";

/// `[store]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Store URL; empty: `switchboard.sqlite3` next to the config file (or in
    /// the working directory without one).
    pub url: String,
    /// Pooled connections; 0: the backend's default (SQLite 4, PostgreSQL 10).
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before the call fails.
    pub acquire_timeout_secs: u64,
    /// Seconds one store call may take before it fails.
    pub op_timeout_secs: u64,
    /// The directory of the config file, where the default store lives
    /// (set by `Config::load`, not a key).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = StoreOptions::default();
        StoreSection {
            url: String::new(),
            max_connections: 0,
            acquire_timeout_secs: d.acquire_timeout.as_secs(),
            op_timeout_secs: d.op_timeout.as_secs(),
            base_dir: None,
        }
    }
}

impl StoreSection {
    /// Remembers where the config file is, for the default store location.
    pub fn set_config_path(&mut self, config: &Path) {
        let dir = config.parent().unwrap_or(Path::new(""));
        self.base_dir = Some(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        });
    }

    /// The URL to open: `url`, or the default SQLite file.
    pub fn resolved_url(&self) -> String {
        if !self.url.is_empty() {
            return self.url.clone();
        }
        let dir = self.base_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        format!("sqlite:{}", dir.join(DEFAULT_FILE).display())
    }

    /// The pool and timeout settings.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
            op_timeout: Duration::from_secs(self.op_timeout_secs),
            ..StoreOptions::default()
        }
    }

    /// Checks the values the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("store.acquire_timeout_secs", self.acquire_timeout_secs),
            ("store.op_timeout_secs", self.op_timeout_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1 second"));
            }
        }
        self.options()
            .validate()
            .map_err(|e| invalid("store", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_store_sits_next_to_the_config_file() {
        let mut s = StoreSection::default();
        assert_eq!(s.resolved_url(), "sqlite:./switchboard.sqlite3");
        s.set_config_path(Path::new("/etc/switchboard/switchboard.toml"));
        assert_eq!(
            s.resolved_url(),
            "sqlite:/etc/switchboard/switchboard.sqlite3"
        );
        s.set_config_path(Path::new("sb.toml"));
        assert_eq!(s.resolved_url(), "sqlite:./switchboard.sqlite3");
        s.url = "postgres://u@h/db".into();
        assert_eq!(s.resolved_url(), "postgres://u@h/db");
    }

    #[test]
    fn options_follow_the_keys() {
        let s = StoreSection {
            max_connections: 3,
            op_timeout_secs: 2,
            ..StoreSection::default()
        };
        let o = s.options();
        assert_eq!(o.max_connections, Some(3));
        assert_eq!(o.op_timeout, Duration::from_secs(2));
        assert_eq!(StoreSection::default().options().max_connections, None);
        let bad = StoreSection {
            op_timeout_secs: 0,
            ..StoreSection::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("store.op_timeout_secs")
        );
    }
}
