//! The Pinghub persona: `switchboard pinghub [-addr A] [-origin O] [-mport P] [-log FILE]`.
//!
//! Accepts Pinghub's flags with its defaults (`-addr 127.0.0.1:8081`, `-mport
//! 8082`) and serves pubsub channels at the root. `-mport` is the loopback
//! metrics port (Prometheus text at `/metrics` instead of Pinghub's munin lines);
//! `-log` must be an absolute path and receives the logs.

use crate::config::{Config, ConfigError};
use crate::persona::goflag::{self, FlagError, Kind};

/// The flags Pinghub defines.
pub const FLAGS: &[(&str, Kind)] = &[
    ("addr", Kind::Value),
    ("origin", Kind::Value),
    ("mport", Kind::Value),
    ("log", Kind::Value),
];

/// Usage text.
pub const USAGE: &str = "Usage of switchboard pinghub:
  -addr string
        Address to listen on, or an absolute unix socket path (default \"127.0.0.1:8081\")
  -log string
        Absolute path of the log file (default: stderr)
  -mport int
        Loopback port for metrics (default 8082)
  -origin string
        Allowed WebSocket origin, scheme://host[:port] (default: any)
";

/// A persona error.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    /// Bad flags.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A flag value that is not acceptable.
    #[error("invalid value for -{flag}: {message}")]
    Value {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The resulting configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Builds the configuration for Pinghub's command line `args` (without the program name).
pub fn config(args: &[String]) -> Result<Config, PersonaError> {
    let f = goflag::parse(args, FLAGS)?;
    let mut c = Config::persona();
    c.console.enabled = false;
    c.echo.enabled = false;
    c.pubsub.enabled = true;
    c.pubsub.prefix = String::new();
    c.server.listen = vec![
        f.get("addr")
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:8081".into()),
    ];
    c.pubsub.origins = match f.get("origin").map(String::as_str) {
        None | Some("") => vec!["*".into()],
        Some(o) => vec![o.to_owned()],
    };
    let mport: u16 = f
        .get("mport")
        .map(String::as_str)
        .unwrap_or("8082")
        .parse()
        .map_err(|e: std::num::ParseIntError| PersonaError::Value {
            flag: "mport",
            message: e.to_string(),
        })?;
    c.ops.listen = format!("127.0.0.1:{mport}");
    if let Some(log) = f.get("log") {
        if !log.starts_with('/') {
            return Err(PersonaError::Value {
                flag: "log",
                message: "must be an absolute path".into(),
            });
        }
        c.log.file.clone_from(log);
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
    fn defaults_match_pinghub() {
        let c = config(&[]).unwrap();
        assert_eq!(c.server.listen, ["127.0.0.1:8081"]);
        assert_eq!(c.ops.listen, "127.0.0.1:8082");
        assert_eq!(c.pubsub.prefix, "");
        assert_eq!(c.pubsub.origins, ["*"]);
        assert!(!c.console.enabled);
        assert!(
            !c.pairing.enabled && !c.rtc.enabled,
            "only Pinghub's routes"
        );
    }

    #[test]
    fn flags_map_onto_the_config() {
        let c = config(&a(&[
            "-addr=/tmp/ph.sock",
            "--origin",
            "https://example.com",
            "-mport",
            "9999",
            "-log=/tmp/ph.log",
        ]))
        .unwrap();
        assert_eq!(c.server.listen, ["/tmp/ph.sock"]);
        assert_eq!(c.pubsub.origins, ["https://example.com"]);
        assert_eq!(c.ops.listen, "127.0.0.1:9999");
        assert_eq!(c.log.file, "/tmp/ph.log");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(
            config(&a(&["-mport", "x"])),
            Err(PersonaError::Value { flag: "mport", .. })
        ));
        assert!(matches!(
            config(&a(&["-log", "rel.log"])),
            Err(PersonaError::Value { flag: "log", .. })
        ));
        assert!(matches!(
            config(&a(&["-bogus"])),
            Err(PersonaError::Flag(_))
        ));
    }
}
