//! The channelserver persona: `switchboard channelserver`, a drop-in for Mozilla's
//! channelserver with its settings, defaults, paths and log format.
//!
//! Settings come from, lowest priority first: the defaults of the original
//! (`0.0.0.0:8000`, limits as in `[pairing]`, GeoIP at
//! `mmdb/latest/GeoLite2-City.mmdb`, statsd at `localhost:8125` with prefix
//! `channelserver`); an optional file `config/{RUN_MODE}` (RUN_MODE defaults to
//! `development`; `.toml` or `.json`, found by extension as the `config` crate
//! does); `PAIR_<KEY>` environment variables; and `--key=value` arguments, which
//! the original's README documents but its code ignored.
//!
//! The service is served at the root (`/v1/ws/`), with the Dockerflow endpoints.
//! Logs are MozLog JSON on stdout (`PAIR_HUMAN_LOGS=true`: text on stderr).
//! The settings the original defines but never used are accepted with a warning;
//! unknown `PAIR_*` variables are warned about (environments are shared), while
//! unknown keys in the file or on the command line are errors.
//! `SWITCHBOARD_OPS_LISTEN` (not an original setting) turns on the Prometheus
//! `/metrics` and `/healthz` listener at that address; it is off otherwise.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

/// Usage text.
pub const USAGE: &str = "Usage: switchboard channelserver [--KEY=VALUE ...]
A drop-in for Mozilla's channelserver. Every setting is also read from the
environment as PAIR_<KEY> and from the optional file config/$RUN_MODE(.toml|.json).

  --hostname=ADDR                  bind address (default 0.0.0.0)
  --port=N                         port (default 8000)
  --max_channel_connections=N      connections per channel (default 3)
  --max_exchanges=N                messages per channel, 0 = unlimited (default 10)
  --max_data=BYTES                 envelope bytes per channel, 0 = unlimited (default 0)
  --conn_lifespan=SECS             channel lifetime from creation, 0 = unlimited (default 300)
  --client_timeout=SECS            idle cutoff (default 60)
  --heartbeat_interval=SECS        server ping period (default 5)
  --mmdb_loc=PATH                  GeoIP2/GeoLite2 City database (default mmdb/latest/GeoLite2-City.mmdb)
  --statsd_host=HOST[:PORT]        statsd target, empty = none (default localhost:8125)
  --metric_name=PREFIX             statsd prefix (default channelserver)
  --trusted_proxy_list=CIDR,...    proxies whose X-Forwarded-For is believed (RFC 1918 always trusted)
  --default_lang=TAG               GeoIP name language fallback (default en)
  --human_logs=BOOL                text logs instead of MozLog JSON (default false)
";

/// The settings the original defines but never reads: accepted, with a warning.
const UNUSED: &[&str] = &[
    "debug",
    "verbose",
    "heartbeat",
    "ip_reputation_server",
    "iprep_min",
    "ip_violation",
];

/// A persona error; each names the setting and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    /// `--help` or `-h`.
    #[error("help requested")]
    Help,
    /// A value that does not parse.
    #[error("invalid value for {origin}: {message}")]
    Value {
        /// Where: `PAIR_PORT`, `--port`, or `config/development.toml: port`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A key the original does not define, on the command line or in the file.
    #[error("unknown setting {0}")]
    Unknown(String),
    /// A command-line argument that is not `--key=value` or `--key value`.
    #[error("unexpected argument {0:?} (expected --key=value)")]
    Argument(String),
    /// The config file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The resulting configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A configuration for the persona, and the warnings to log once logging is up.
#[derive(Debug)]
pub struct Launch {
    /// The configuration.
    pub config: Config,
    /// Settings accepted but without effect, and unknown `PAIR_*` variables.
    pub warnings: Vec<String>,
}

/// The original's settings, with its defaults.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    hostname: String,
    port: u16,
    max_channel_connections: u32,
    conn_lifespan: u64,
    client_timeout: u64,
    heartbeat_interval: u64,
    max_exchanges: u64,
    max_data: u64,
    mmdb_loc: String,
    statsd_host: String,
    metric_name: String,
    trusted_proxy_list: String,
    default_lang: String,
    human_logs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hostname: "0.0.0.0".into(),
            port: 8000,
            max_channel_connections: 3,
            conn_lifespan: 300,
            client_timeout: 60,
            heartbeat_interval: 5,
            max_exchanges: 10,
            max_data: 0,
            mmdb_loc: "mmdb/latest/GeoLite2-City.mmdb".into(),
            statsd_host: "localhost:8125".into(),
            metric_name: "channelserver".into(),
            trusted_proxy_list: String::new(),
            default_lang: "en".into(),
            human_logs: false,
        }
    }
}

/// Whether an unknown key is an error or a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Strict,
    Lenient,
}

impl Settings {
    /// Sets `key` (lowercase) to `value`; `origin` names the source in messages.
    fn set(
        &mut self,
        key: &str,
        value: &str,
        origin: &str,
        strictness: Strictness,
        warnings: &mut Vec<String>,
    ) -> Result<(), PersonaError> {
        fn num<T: std::str::FromStr>(origin: &str, value: &str) -> Result<T, PersonaError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| PersonaError::Value {
                    origin: origin.to_owned(),
                    message: format!("{value:?}: {e}"),
                })
        }
        match key {
            "hostname" => self.hostname = value.trim().to_owned(),
            "port" => self.port = num(origin, value)?,
            "max_channel_connections" => self.max_channel_connections = num(origin, value)?,
            "conn_lifespan" => self.conn_lifespan = num(origin, value)?,
            "client_timeout" => self.client_timeout = num(origin, value)?,
            "heartbeat_interval" => self.heartbeat_interval = num(origin, value)?,
            "max_exchanges" => self.max_exchanges = num(origin, value)?,
            "max_data" => self.max_data = num(origin, value)?,
            "mmdb_loc" => self.mmdb_loc = value.to_owned(),
            "statsd_host" => self.statsd_host = value.trim().to_owned(),
            "metric_name" => self.metric_name = value.to_owned(),
            "trusted_proxy_list" => self.trusted_proxy_list = value.to_owned(),
            "default_lang" => self.default_lang = value.trim().to_owned(),
            "human_logs" => {
                self.human_logs = parse_bool(value).ok_or_else(|| PersonaError::Value {
                    origin: origin.to_owned(),
                    message: format!("{value:?} is not a boolean"),
                })?
            }
            k if UNUSED.contains(&k) => {
                warnings.push(format!(
                    "{origin} is accepted for compatibility and has no effect"
                ));
            }
            _ if strictness == Strictness::Lenient => {
                warnings.push(format!("{origin} is not a channelserver setting; ignored"));
            }
            _ => return Err(PersonaError::Unknown(origin.to_owned())),
        }
        Ok(())
    }

    fn into_config(self) -> Config {
        let mut c = Config::persona();
        c.console.enabled = false;
        c.echo.enabled = false;
        c.pubsub.enabled = false;
        c.rtc.enabled = false;
        c.ops.enabled = false;
        c.server.listen = vec![listen_addr(&self.hostname, self.port)];
        let p = &mut c.pairing;
        p.enabled = true;
        p.prefix = String::new();
        p.dockerflow = true;
        p.max_channel_connections = self.max_channel_connections;
        p.conn_lifespan = self.conn_lifespan;
        p.client_timeout = self.client_timeout;
        p.heartbeat_interval = self.heartbeat_interval;
        p.max_exchanges = self.max_exchanges;
        p.max_data = self.max_data;
        p.mmdb_loc = self.mmdb_loc;
        p.statsd_host = self.statsd_host;
        p.metric_name = self.metric_name;
        p.trusted_proxies = self
            .trusted_proxy_list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        p.trust_private_ranges = true;
        p.default_lang = self.default_lang;
        c.log.format = if self.human_logs { "text" } else { "mozlog" }.into();
        c
    }
}

/// The values the `config` crate reads as booleans.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `host:port`, bracketing a bare IPv6 host.
fn listen_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The settings file for `run_mode` under `dir/config`, if there is one.
fn find_config_file(dir: &Path, run_mode: &str) -> Result<Option<PathBuf>, PersonaError> {
    let base = dir.join("config").join(run_mode);
    let supported = |p: &Path| {
        matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("toml" | "json")
        )
    };
    if base.is_file() && supported(&base) {
        return Ok(Some(base));
    }
    for ext in ["toml", "json"] {
        let p = base.with_file_name(format!("{run_mode}.{ext}"));
        if p.is_file() {
            return Ok(Some(p));
        }
    }
    for ext in ["yaml", "yml", "ini", "ron", "json5"] {
        let p = base.with_file_name(format!("{run_mode}.{ext}"));
        if p.is_file() {
            return Err(PersonaError::File {
                path: p.display().to_string(),
                message: "unsupported format; use .toml or .json".into(),
            });
        }
    }
    if base.is_file() {
        return Err(PersonaError::File {
            path: base.display().to_string(),
            message: "no extension; name it .toml or .json".into(),
        });
    }
    Ok(None)
}

/// The key/value pairs of a flat TOML or JSON settings file.
fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, PersonaError> {
    let shown = path.display().to_string();
    let err = |message: String| PersonaError::File {
        path: shown.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let pairs: Vec<(String, Result<String, ()>)> = if json {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(err("expected a JSON object of settings".into()));
        };
        map.into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => Ok(s),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    serde_json::Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(()),
                };
                (k, s)
            })
            .collect()
    } else {
        let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        table
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    toml::Value::String(s) => Ok(s),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::Float(f) => Ok(f.to_string()),
                    toml::Value::Boolean(b) => Ok(b.to_string()),
                    _ => Err(()),
                };
                (k, s)
            })
            .collect()
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            v.map(|v| (k.to_ascii_lowercase(), v))
                .map_err(|()| err(format!("`{k}` must be a string, number or boolean")))
        })
        .collect()
}

/// `--key=value` / `--key value` pairs (dashes in keys read as underscores).
fn parse_args(args: &[String]) -> Result<Vec<(String, String, String)>, PersonaError> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(PersonaError::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(PersonaError::Argument(arg.clone()));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => {
                let v = it.next().ok_or_else(|| PersonaError::Value {
                    origin: format!("--{body}"),
                    message: "missing value".into(),
                })?;
                (body.to_owned(), v.clone())
            }
        };
        if name.is_empty() {
            return Err(PersonaError::Argument(arg.clone()));
        }
        let key = name.replace('-', "_").to_ascii_lowercase();
        out.push((key, value, format!("--{name}")));
    }
    Ok(out)
}

/// Builds the persona's configuration from command-line `args` (without the
/// program name), the process environment `env`, and the working directory `dir`
/// (where `config/` is looked for).
pub fn config(
    args: &[String],
    env: impl IntoIterator<Item = (String, String)>,
    dir: &Path,
) -> Result<Launch, PersonaError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut settings = Settings::default();
    let mut warnings = Vec::new();

    let run_mode = env
        .iter()
        .find(|(k, _)| k == "RUN_MODE")
        .map_or("development", |(_, v)| v.as_str());
    if let Some(path) = find_config_file(dir, run_mode)? {
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (key, value) in read_config_file(&path)? {
            let origin = format!("{shown}: {key}");
            settings.set(&key, &value, &origin, Strictness::Strict, &mut warnings)?;
        }
    }
    let mut pair_env: Vec<&(String, String)> =
        env.iter().filter(|(k, _)| k.starts_with("PAIR_")).collect();
    pair_env.sort();
    for (name, value) in pair_env {
        let key = name["PAIR_".len()..].to_ascii_lowercase();
        settings.set(&key, value, name, Strictness::Lenient, &mut warnings)?;
    }
    for (key, value, origin) in parse_args(args)? {
        settings.set(&key, &value, &origin, Strictness::Strict, &mut warnings)?;
    }

    let mut config = settings.into_config();
    if let Some((_, ops)) = env.iter().find(|(k, _)| k == "SWITCHBOARD_OPS_LISTEN")
        && ops != "off"
    {
        config.ops.enabled = true;
        config.ops.listen = ops.clone();
    }
    config.validate()?;
    Ok(Launch { config, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A scratch directory with `config/<name>` holding `text`.
    struct Dir(PathBuf);

    impl Dir {
        fn with(files: &[(&str, &str)]) -> Dir {
            static N: AtomicU64 = AtomicU64::new(0);
            let d = std::env::temp_dir().join(format!(
                "sb-cs-persona-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(d.join("config")).unwrap();
            for (name, text) in files {
                std::fs::write(d.join("config").join(name), text).unwrap();
            }
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let dir = Dir::with(&[]);
        let l = config(&[], Vec::new(), &dir.0).unwrap();
        let c = &l.config;
        assert_eq!(c.server.listen, ["0.0.0.0:8000"]);
        assert!(!c.console.enabled && !c.pubsub.enabled && !c.rtc.enabled && !c.ops.enabled);
        let p = &c.pairing;
        assert!(p.enabled && p.dockerflow && p.trust_private_ranges);
        assert_eq!(p.prefix, "");
        assert_eq!(
            (
                p.max_channel_connections,
                p.conn_lifespan,
                p.client_timeout,
                p.heartbeat_interval,
                p.max_exchanges,
                p.max_data
            ),
            (3, 300, 60, 5, 10, 0)
        );
        assert_eq!(p.mmdb_loc, "mmdb/latest/GeoLite2-City.mmdb");
        assert_eq!(
            (p.statsd_host.as_str(), p.metric_name.as_str()),
            ("localhost:8125", "channelserver")
        );
        assert_eq!(p.default_lang, "en");
        assert_eq!(c.log.format, "mozlog");
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn every_pair_variable_is_read() {
        let dir = Dir::with(&[]);
        let l = config(
            &[],
            env(&[
                ("PAIR_HOSTNAME", "127.0.0.1"),
                ("PAIR_PORT", "8111"),
                ("PAIR_MAX_CHANNEL_CONNECTIONS", "6"),
                ("PAIR_CONN_LIFESPAN", "30"),
                ("PAIR_CLIENT_TIMEOUT", "3"),
                ("PAIR_HEARTBEAT_INTERVAL", "1"),
                ("PAIR_MAX_EXCHANGES", "5"),
                ("PAIR_MAX_DATA", "3096"),
                ("PAIR_MMDB_LOC", "/data/City.mmdb"),
                ("PAIR_STATSD_HOST", "127.0.0.1:8125"),
                ("PAIR_METRIC_NAME", "pairing"),
                ("PAIR_TRUSTED_PROXY_LIST", "127.0.0.1, 2001:db8::/32"),
                ("PAIR_DEFAULT_LANG", "fr"),
                ("PAIR_HUMAN_LOGS", "true"),
                ("HOME", "/root"),
            ]),
            &dir.0,
        )
        .unwrap();
        let c = &l.config;
        assert_eq!(c.server.listen, ["127.0.0.1:8111"]);
        let p = &c.pairing;
        assert_eq!(
            (
                p.max_channel_connections,
                p.conn_lifespan,
                p.client_timeout,
                p.heartbeat_interval,
                p.max_exchanges,
                p.max_data
            ),
            (6, 30, 3, 1, 5, 3096)
        );
        assert_eq!(p.mmdb_loc, "/data/City.mmdb");
        assert_eq!(
            (p.statsd_host.as_str(), p.metric_name.as_str()),
            ("127.0.0.1:8125", "pairing")
        );
        assert_eq!(p.trusted_proxies, ["127.0.0.1", "2001:db8::/32"]);
        assert_eq!(p.default_lang, "fr");
        assert_eq!(c.log.format, "text");
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn unused_and_unknown_variables_are_warnings() {
        let dir = Dir::with(&[]);
        let l = config(
            &[],
            env(&[
                ("PAIR_DEBUG", "true"),
                ("PAIR_VERBOSE", "1"),
                ("PAIR_HEARTBEAT", "5"),
                ("PAIR_IP_REPUTATION_SERVER", ""),
                ("PAIR_IPREP_MIN", "0"),
                ("PAIR_IP_VIOLATION", "channel_abuse"),
                ("PAIR_HOST", "0.0.0.0"),
            ]),
            &dir.0,
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 7, "{:?}", l.warnings);
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("PAIR_DEBUG") && w.contains("no effect"))
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("PAIR_HOST") && w.contains("not a channelserver setting"))
        );
    }

    #[test]
    fn bad_values_name_their_origin() {
        let dir = Dir::with(&[]);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PAIR_PORT", "tcp://10.0.0.1:8000")], "PAIR_PORT"),
            (&[("PAIR_MAX_EXCHANGES", "-1")], "PAIR_MAX_EXCHANGES"),
            (&[("PAIR_HUMAN_LOGS", "perhaps")], "PAIR_HUMAN_LOGS"),
            (
                &[("PAIR_TRUSTED_PROXY_LIST", "10.0.0.0/33")],
                "pairing.trusted_proxies",
            ),
            (
                &[("PAIR_HEARTBEAT_INTERVAL", "0")],
                "pairing.heartbeat_interval",
            ),
            (&[("PAIR_DEFAULT_LANG", "*")], "pairing.default_lang"),
        ];
        for (vars, origin) in cases {
            let e = config(&[], env(vars), &dir.0).unwrap_err().to_string();
            assert!(e.contains(origin), "{vars:?}: {e}");
        }
    }

    #[test]
    fn file_then_env_then_arguments() {
        let dir = Dir::with(&[
            (
                "development.toml",
                "port = 9001\nmax_exchanges = 4\nhuman_logs = true\ndebug = true\n",
            ),
            (
                "production.json",
                r#"{"port": "9002", "max_data": 100, "mmdb_loc": "/m.mmdb"}"#,
            ),
        ]);
        let l = config(&[], env(&[("PAIR_MAX_EXCHANGES", "6")]), &dir.0).unwrap();
        assert_eq!(l.config.server.listen, ["0.0.0.0:9001"]);
        assert_eq!(l.config.pairing.max_exchanges, 6, "env beats the file");
        assert_eq!(l.config.log.format, "text");
        assert_eq!(l.warnings.len(), 1, "debug has no effect: {:?}", l.warnings);

        let l = config(
            &args(&["--port=9100", "--max-data", "7", "--hostname", "::1"]),
            env(&[("RUN_MODE", "production"), ("PAIR_PORT", "9003")]),
            &dir.0,
        )
        .unwrap();
        assert_eq!(l.config.server.listen, ["[::1]:9100"], "arguments beat env");
        assert_eq!(l.config.pairing.max_data, 7);
        assert_eq!(l.config.pairing.mmdb_loc, "/m.mmdb");

        let l = config(&[], env(&[("RUN_MODE", "production.json")]), &dir.0).unwrap();
        assert_eq!(l.config.server.listen, ["0.0.0.0:9002"]);
        // A missing file for the run mode is fine.
        assert!(config(&[], env(&[("RUN_MODE", "staging")]), &dir.0).is_ok());
    }

    #[test]
    fn file_and_argument_errors() {
        let dir = Dir::with(&[
            ("typo.toml", "max_exchange = 4\n"),
            ("nested.toml", "[pairing]\nport = 1\n"),
            ("broken.json", "{"),
            ("odd.yaml", "port: 1\n"),
        ]);
        let run = |mode: &str| {
            config(&[], env(&[("RUN_MODE", mode)]), &dir.0)
                .unwrap_err()
                .to_string()
        };
        assert!(run("typo").contains("max_exchange"), "{}", run("typo"));
        assert!(run("nested").contains("pairing"), "{}", run("nested"));
        assert!(run("broken").contains("broken.json"), "{}", run("broken"));
        assert!(run("odd").contains("unsupported"), "{}", run("odd"));
        assert!(matches!(
            config(&args(&["--help"]), Vec::new(), &dir.0),
            Err(PersonaError::Help)
        ));
        assert!(matches!(
            config(&args(&["8000"]), Vec::new(), &dir.0),
            Err(PersonaError::Argument(_))
        ));
        assert!(matches!(
            config(&args(&["--nope=1"]), Vec::new(), &dir.0),
            Err(PersonaError::Unknown(_))
        ));
        assert!(matches!(
            config(&args(&["--port"]), Vec::new(), &dir.0),
            Err(PersonaError::Value { .. })
        ));
    }

    #[test]
    fn ops_listener_is_opt_in() {
        let dir = Dir::with(&[]);
        let l = config(
            &[],
            env(&[("SWITCHBOARD_OPS_LISTEN", "127.0.0.1:9898")]),
            &dir.0,
        )
        .unwrap();
        assert!(l.config.ops.enabled);
        assert_eq!(l.config.ops.listen, "127.0.0.1:9898");
    }

    #[test]
    fn helpers() {
        assert_eq!(listen_addr("::", 8000), "[::]:8000");
        assert_eq!(listen_addr("[::1]", 1), "[::1]:1");
        assert_eq!(listen_addr("localhost", 2), "localhost:2");
        for (v, b) in [
            ("TRUE", Some(true)),
            ("0", Some(false)),
            ("off", Some(false)),
            ("x", None),
        ] {
            assert_eq!(parse_bool(v), b, "{v}");
        }
    }
}
