//! Reloading on SIGHUP: one [`Reloader`] holds every part of the running
//! server that can re-read its source without a restart, and reloads them all
//! when the process gets SIGHUP.
//!
//! Contract of a [`Reloadable`]: `reload` re-reads the part's source (files, a
//! backend's settings) and, if it is usable, swaps it in for *new* work
//! without disturbing work in progress (open connections keep going); if it is
//! not usable, the part keeps its previous value and returns the error. It
//! must not block for long (it runs on a runtime thread) and must not panic.
//! The reloader logs each outcome: what changed, that nothing changed, or
//! why the old value was kept.
//!
//! Registered today: the listeners' TLS certificates (`tls`). To add a part,
//! implement [`Reloadable`] and call [`Reloader::register`] where the part is built.

use std::sync::{Arc, Mutex};

use switchboard_edge::tls::{Reloaded, Tls};

/// Why a reload kept the old value.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReloadError(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// A part of the server that can re-read its source; see the module docs.
pub trait Reloadable: Send + Sync {
    /// A short name for logs, e.g. `tls`.
    fn name(&self) -> &str;

    /// Re-reads the source. `Ok` says what changed (empty: nothing did).
    fn reload(&self) -> Result<String, ReloadError>;
}

/// The outcome of reloading one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new value is in use; the text says what changed.
    Changed(String),
    /// The source holds what was already in use.
    Unchanged,
    /// The old value is kept; the text says why.
    Kept(String),
}

/// Every reloadable part of one server; cheap to clone.
#[derive(Clone, Default)]
pub struct Reloader {
    parts: Arc<Mutex<Vec<Arc<dyn Reloadable>>>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_list()
            .entries(parts.iter().map(|p| p.name().to_owned()))
            .finish()
    }
}

impl Reloader {
    /// Adds `part`; it is reloaded on every later [`reload_all`](Self::reload_all).
    pub fn register(&self, part: Arc<dyn Reloadable>) {
        self.parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(part);
    }

    /// Reloads every part in registration order, logs and counts each
    /// outcome (`switchboard_reloads_total{part,outcome}`), and returns them.
    pub fn reload_all(&self) -> Vec<(String, Outcome)> {
        let parts: Vec<_> = self.parts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for part in parts {
            let name = part.name().to_owned();
            let outcome = match part.reload() {
                Ok(change) if change.is_empty() => {
                    tracing::info!(part = %name, "reload: unchanged");
                    Outcome::Unchanged
                }
                Ok(change) => {
                    tracing::info!(part = %name, change = %change, "reload: changed");
                    Outcome::Changed(change)
                }
                Err(e) => {
                    tracing::warn!(part = %name, error = %e, "reload failed: keeping the previous value");
                    Outcome::Kept(e.to_string())
                }
            };
            let label = match outcome {
                Outcome::Changed(_) => "changed",
                Outcome::Unchanged => "unchanged",
                Outcome::Kept(_) => "failed",
            };
            metrics::counter!("switchboard_reloads_total", "part" => name.clone(), "outcome" => label)
                .increment(1);
            out.push((name, outcome));
        }
        out
    }
}

impl Reloadable for Tls {
    fn name(&self) -> &str {
        "tls"
    }

    fn reload(&self) -> Result<String, ReloadError> {
        match Tls::reload(self) {
            Ok(Reloaded::Changed) => Ok(format!(
                "new certificate chain from {} ({} certificate(s))",
                self.cert_path().display(),
                self.chain_len()
            )),
            Ok(Reloaded::Unchanged) => Ok(String::new()),
            Err(e) => Err(ReloadError(Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter(AtomicUsize);

    impl Reloadable for Counter {
        fn name(&self) -> &str {
            "counter"
        }

        fn reload(&self) -> Result<String, ReloadError> {
            match self.0.fetch_add(1, Ordering::Relaxed) {
                0 => Ok("one".into()),
                1 => Ok(String::new()),
                _ => Err(ReloadError(Box::new(std::io::Error::other("gone")))),
            }
        }
    }

    #[test]
    fn outcomes_are_reported_per_part() {
        let r = Reloader::default();
        r.register(Arc::new(Counter(AtomicUsize::new(0))));
        assert_eq!(
            r.reload_all(),
            [("counter".into(), Outcome::Changed("one".into()))]
        );
        assert_eq!(r.reload_all(), [("counter".into(), Outcome::Unchanged)]);
        assert_eq!(
            r.reload_all(),
            [("counter".into(), Outcome::Kept("gone".into()))]
        );
    }
}
