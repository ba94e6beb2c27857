//! The pgeu-meetingserver persona:
//! `switchboard meetingserver -origin ORIGIN [-behindproxy] [-dburl URL] [-listen L] [-profilelisten L]`.
//!
//! The original's flags in Go's flag syntax, with its defaults (`-dburl
//! postgres:///postgresqleu`, `-listen 127.0.0.1:8199`). The meetings live in
//! pgeu-system's database (its tables are used as they are), served at
//! `/ws/meeting/` with `/__meetingstatus` on the same listener, as the
//! original. `-listen` and `-profilelisten` take `host:port` or a unix socket
//! path; `-profilelisten` serves CPU profiles (pprof format) and `/metrics`.

use crate::config::{Config, ConfigError};
use crate::persona::goflag::{self, FlagError, Kind};

/// The flags pgeu-meetingserver defines.
pub const FLAGS: &[(&str, Kind)] = &[
    ("origin", Kind::Value),
    ("behindproxy", Kind::Bool),
    ("dburl", Kind::Value),
    ("listen", Kind::Value),
    ("profilelisten", Kind::Value),
];

/// The original's database URL: database `postgresqleu` on the local socket.
pub const DEFAULT_DBURL: &str = "postgres:///postgresqleu";

/// The original's listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8199";

/// What the original prints when `-origin` is missing (before the usage; exit 0).
pub const MISSING_ORIGIN: &str = "Must specify a value for origin veritication";

/// Usage text.
pub const USAGE: &str = "Usage of switchboard meetingserver:
  -behindproxy
        Behind proxy, decode x-forwarded-for
  -dburl string
        PostgreSQL connection URL (default \"postgres:///postgresqleu\")
  -listen string
        Host and port to listen to, or a unix socket path (default \"127.0.0.1:8199\")
  -origin string
        Origin to verify (exact match; * allows every origin)
  -profilelisten string
        Host and port (or unix socket path) for CPU profiles and metrics
";

/// A persona error.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    /// Bad flags (or `-h`).
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// `-origin` is missing: the original prints a line and the usage, and exits 0.
    #[error("{MISSING_ORIGIN}")]
    MissingOrigin,
    /// The resulting configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Builds the configuration for pgeu-meetingserver's command line `args`.
pub fn config(args: &[String]) -> Result<Config, PersonaError> {
    let f = goflag::parse(args, FLAGS)?;
    let origin = f
        .get("origin")
        .filter(|o| !o.is_empty())
        .ok_or(PersonaError::MissingOrigin)?;
    let mut c = Config::persona();
    c.meetings.enabled = true;
    c.meetings.schema = "pgeu".into();
    c.meetings.pgeu_url = f
        .get("dburl")
        .cloned()
        .unwrap_or_else(|| DEFAULT_DBURL.into());
    c.meetings.origin = origin.clone();
    c.meetings.behind_proxy = f.get("behindproxy").is_some_and(|v| v == "true");
    c.meetings.status_endpoint = true;
    c.meetings.page = false;
    c.server.listen = vec![
        f.get("listen")
            .cloned()
            .unwrap_or_else(|| DEFAULT_LISTEN.into()),
    ];
    match f.get("profilelisten").filter(|p| !p.is_empty()) {
        Some(p) => {
            c.ops.enabled = true;
            c.ops.listen = p.clone();
            c.ops.profiling = true;
        }
        None => c.ops.enabled = false,
    }
    c.validate()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn defaults_match_the_original() {
        let c = config(&a(&["-origin", "https://www.postgresql.eu"])).unwrap();
        assert_eq!(c.server.listen, ["127.0.0.1:8199"]);
        assert!(c.meetings.enabled && c.meetings.is_pgeu());
        assert_eq!(c.meetings.pgeu_url, DEFAULT_DBURL);
        assert_eq!(c.meetings.origin, "https://www.postgresql.eu");
        assert!(!c.meetings.behind_proxy);
        assert!(c.meetings.status_endpoint);
        assert!(!c.ops.enabled, "no extra listener unless -profilelisten");
        assert!(!c.rtc.enabled && !c.pubsub.enabled && !c.console.enabled);
    }

    #[test]
    fn every_go_spelling_and_flag_maps() {
        let c = config(&a(&[
            "--origin=*",
            "-behindproxy",
            "-dburl",
            "postgres://pgeu@/pgeu?host=/var/run/postgresql",
            "-listen=/tmp/.meetingserver_socket",
            "-profilelisten",
            "127.0.0.1:6060",
        ]))
        .unwrap();
        assert_eq!(c.meetings.origin, "*");
        assert!(c.meetings.behind_proxy);
        assert_eq!(c.server.listen, ["/tmp/.meetingserver_socket"]);
        assert!(c.ops.enabled && c.ops.profiling);
        assert_eq!(c.ops.listen, "127.0.0.1:6060");
    }

    #[test]
    fn a_missing_origin_is_its_own_error() {
        assert!(matches!(config(&[]), Err(PersonaError::MissingOrigin)));
        assert!(matches!(
            config(&a(&["-origin="])),
            Err(PersonaError::MissingOrigin)
        ));
        assert!(matches!(
            config(&a(&["-bogus"])),
            Err(PersonaError::Flag(_))
        ));
    }
}
