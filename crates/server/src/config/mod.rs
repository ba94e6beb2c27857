//! Configuration: one TOML file, then `SWITCHBOARD_<SECTION>_<KEY>` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Fails fast: an unknown section or key, a value of the wrong type, or a value
//! out of range is an error that names the key. Nothing falls back silently.
//! `switchboard.example.toml` at the repository root documents every option.

use std::path::Path;

mod cluster;
mod meetings;
mod pairing;
pub mod print;
mod pubsub;
mod rtc;
pub mod sources;
mod store;
mod talk;

use serde::Deserialize;
use switchboard_edge::ListenAddr;

pub use cluster::{ClusterSection, default_node_name};
pub use meetings::MeetingsSection;
pub use pairing::PairingSection;
pub use pubsub::{HistorySection, MAX_HISTORY, PubsubSection};
pub use rtc::RtcSection;
pub use sources::{Flags, Provenance, Source};
pub use store::StoreSection;
pub use talk::{TalkBackendSection, TalkSection};

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is syntactically fine but not allowed. When it comes from
    /// [`Config::load_traced`], `message` ends with the value given (unless it
    /// is a secret) and where it came from.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `pubsub.prefix`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listeners and server-wide settings.
    pub server: ServerSection,
    /// The operations listener (metrics, health).
    pub ops: OpsSection,
    /// Logging.
    pub log: LogSection,
    /// The web console at `/`.
    pub console: ConsoleSection,
    /// The pubsub service (Pinghub).
    pub pubsub: PubsubSection,
    /// The pairing service (channelserver).
    pub pairing: PairingSection,
    /// The rtc service (webrtc-signal-server).
    pub rtc: RtcSection,
    /// The meetings service (pgeu-meetingserver).
    pub meetings: MeetingsSection,
    /// The talk service (nextcloud-spreed-signaling).
    pub talk: TalkSection,
    /// Where state that outlives the process is kept (shared by services).
    pub store: StoreSection,
    /// Several nodes over NATS (empty `nats_url`: one node).
    pub cluster: ClusterSection,
    /// The test-only echo service.
    pub echo: EchoSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerSection::default(),
            ops: OpsSection::default(),
            log: LogSection::default(),
            console: ConsoleSection { enabled: true },
            pubsub: PubsubSection::default(),
            pairing: PairingSection::default(),
            rtc: RtcSection::default(),
            meetings: MeetingsSection::default(),
            talk: TalkSection::default(),
            store: StoreSection::default(),
            cluster: ClusterSection::default(),
            echo: EchoSection::default(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// `host:port` or an absolute unix socket path; several allowed.
    pub listen: Vec<String>,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Seconds to wait for sockets to close on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Number of hub shards.
    pub hub_shards: usize,
    /// PEM file with the TLS certificate chain; with `tls_key`, every
    /// `listen` address serves HTTPS/WSS (empty: plain HTTP). Reloaded on SIGHUP.
    pub tls_cert: String,
    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: String,
    /// Seconds a new connection has to send its request head (and a later
    /// head to complete after its first byte); then it is closed.
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive HTTP connection may sit idle between requests.
    pub idle_timeout_secs: u64,
    /// Seconds a request body may stall while it is being read.
    pub body_timeout_secs: u64,
    /// Connections open at once on the `listen` listeners; more get 503.
    /// 0: the open-file limit minus a reserve for the ops listener, the
    /// store and NATS.
    pub max_connections: usize,
    /// Connections open at once per client address (behind `trusted_proxies`,
    /// the forwarded address; IPv6 by /64); 0: no limit.
    pub max_connections_per_ip: u32,
    /// WebSocket upgrades per second per client address; more get 429; 0: no limit.
    pub max_upgrades_per_ip_per_sec: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: vec!["127.0.0.1:8199".into()],
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 10,
            hub_shards: 64,
            tls_cert: String::new(),
            tls_key: String::new(),
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_upgrades_per_ip_per_sec: 0,
        }
    }
}

impl ServerSection {
    /// The HTTP timeouts of every listener (the ops listener's too).
    pub fn timeouts(&self) -> switchboard_edge::HttpTimeouts {
        use std::time::Duration;
        switchboard_edge::HttpTimeouts {
            header: Duration::from_secs(self.header_timeout_secs),
            idle: Duration::from_secs(self.idle_timeout_secs),
            body: Duration::from_secs(self.body_timeout_secs),
        }
    }
}

/// `[ops]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OpsSection {
    /// Serve `/metrics` and `/healthz`.
    pub enabled: bool,
    /// Where; loopback by default.
    pub listen: String,
    /// Also serve CPU profiles at `/debug/pprof/profile` (pprof format).
    pub profiling: bool,
}

impl Default for OpsSection {
    fn default() -> Self {
        OpsSection {
            enabled: true,
            listen: "127.0.0.1:8198".into(),
            profiling: false,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A `tracing` filter such as `info` or `switchboard=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Append logs to this absolute path instead of stderr (empty: stderr).
    pub file: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: "text".into(),
            file: String::new(),
        }
    }
}

/// `[console]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Serve the landing page at `/`.
    pub enabled: bool,
}

/// `[echo]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EchoSection {
    /// Whether the test-only echo endpoint `/echo` runs.
    pub enabled: bool,
}

pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Whether an allowed-origin entry can ever match a browser's `Origin` header:
/// `*`, or `scheme://host[:port]`.
fn origin_has_scheme(origin: &str) -> bool {
    origin == "*"
        || origin
            .split_once("://")
            .is_some_and(|(scheme, host)| !scheme.is_empty() && !host.is_empty())
}

fn origin_problem(origin: &str) -> String {
    let host = origin.trim_start_matches('/');
    format!(
        "{origin:?} has no scheme, so no browser's Origin header can match it and only requests \
         without an Origin header are allowed; write it as a browser sends it, e.g. \
         \"https://{host}\" (or \"*\" to allow every origin)"
    )
}

pub(crate) fn check_prefix(key: &'static str, p: &str) -> Result<(), ConfigError> {
    if !p.is_empty() && (!p.starts_with('/') || p.ends_with('/')) {
        return Err(invalid(
            key,
            "must be empty or start with '/' and not end with '/'",
        ));
    }
    Ok(())
}

impl Config {
    /// The starting point of every persona: the defaults with every service, the
    /// console and the echo endpoint turned off. A persona turns on its own service,
    /// so an original's deployment never grows routes it did not have.
    pub fn persona() -> Self {
        let mut c = Config::default();
        c.console.enabled = false;
        c.echo.enabled = false;
        c.pubsub.enabled = false;
        c.pairing.enabled = false;
        c.rtc.enabled = false;
        c.meetings.enabled = false;
        c.talk.enabled = false;
        c
    }

    /// Loads `path` (if any), applies the environment overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Ok(Config::load_traced(path, env, &Flags::default())?.0)
    }

    /// The native configuration: `path` (if any), then the environment
    /// overrides from `env`, then the command-line `flags`; validated, with
    /// where each value came from. An error names the key, and the variable or
    /// flag when the value came from one.
    pub fn load_traced(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Flags,
    ) -> Result<(Self, Provenance), ConfigError> {
        let shown = path.map(|p| p.display().to_string());
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let in_file = |e: toml::de::Error| {
            ConfigError::Parse(match &shown {
                Some(p) => format!("{p}: {e}"),
                None => e.to_string(),
            })
        };
        let mut value: toml::Table = toml::from_str(&text).map_err(in_file)?;
        // Parse once without overrides so file errors name the file's key.
        let _: Config = toml::from_str(&text).map_err(in_file)?;
        let mut provenance = Provenance::from_file(path, &value);
        let applied = apply_env(&mut value, env)?;
        let merged = toml::to_string(&value).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut cfg: Config = toml::from_str(&merged).map_err(|e| {
            let msg = e.to_string();
            // Name the environment variable when the bad key came from one.
            match applied.iter().find(|(_, _, key)| {
                msg.contains(&format!("`{key}`")) || msg.contains(&format!("{key} ="))
            }) {
                Some((var, _, _)) => {
                    ConfigError::Parse(format!("{msg} (set by environment variable {var})"))
                }
                None => ConfigError::Parse(msg),
            }
        })?;
        for (var, section, key) in applied {
            provenance.set(format!("{section}.{key}"), Source::Env(var));
        }
        flags.apply(&mut cfg, &mut provenance);
        cfg.normalize(&mut provenance);
        if let Some(p) = path {
            cfg.store.set_config_path(p);
        }
        cfg.validate()
            .and_then(|()| cfg.check_native())
            .map_err(|e| provenance.annotate(e, &cfg))?;
        Ok((cfg, provenance))
    }

    /// A persona's configuration with the `SWITCHBOARD_CLUSTER_*` variables
    /// applied (the personas' originals have no cluster settings, so every
    /// persona takes them from the environment, as `serve` does), then validated:
    /// a persona joins a cluster exactly like a native node.
    pub fn with_cluster_env(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let cluster: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SWITCHBOARD_CLUSTER_"))
            .collect();
        if cluster.is_empty() {
            return Ok(self);
        }
        let mut table = toml::Table::new();
        table.insert(
            "cluster".into(),
            toml::Value::try_from(&self.cluster).map_err(|e| ConfigError::Parse(e.to_string()))?,
        );
        let applied = apply_env(&mut table, cluster)?;
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let parsed: Config = toml::from_str(&merged).map_err(|e| {
            let vars: Vec<&str> = applied.iter().map(|(v, _, _)| v.as_str()).collect();
            ConfigError::Parse(format!("{e} (set by {})", vars.join(", ")))
        })?;
        let cfg = Config {
            cluster: parsed.cluster,
            ..self
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Spellings that mean something else: `ops.listen = "off"` turns the ops listener off.
    fn normalize(&mut self, provenance: &mut Provenance) {
        if self.ops.listen == "off" {
            self.ops.enabled = false;
            self.ops.listen = OpsSection::default().listen;
            let from = provenance.source("ops.listen");
            provenance.set("ops.enabled".into(), from);
        }
    }

    /// Checks that native configuration refuses but the personas (whose
    /// originals accepted such values) only warn about; see [`Config::warnings`].
    pub fn check_native(&self) -> Result<(), ConfigError> {
        for (key, origins) in [
            ("pubsub.origins", &self.pubsub.origins),
            ("rtc.origins", &self.rtc.origins),
        ] {
            if let Some(bad) = origins.iter().find(|o| !origin_has_scheme(o)) {
                return Err(invalid(key, origin_problem(bad)));
            }
        }
        Ok(())
    }

    /// What a persona warns about at start instead of refusing (see [`Config::check_native`]).
    pub fn warnings(&self, origin_flag: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.pubsub.enabled {
            for bad in self.pubsub.origins.iter().filter(|o| !origin_has_scheme(o)) {
                out.push(format!(
                    "{origin_flag}: {}; accepted for compatibility",
                    origin_problem(bad)
                ));
            }
        }
        out
    }

    /// Checks every value that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.listen.is_empty() {
            return Err(invalid(
                "server.listen",
                "at least one listener is required",
            ));
        }
        for l in &self.server.listen {
            ListenAddr::parse(l).map_err(|e| invalid("server.listen", e.to_string()))?;
        }
        switchboard_edge::client_ip::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| invalid("server.trusted_proxies", e.to_string()))?;
        if self.server.hub_shards == 0 {
            return Err(invalid("server.hub_shards", "must be at least 1"));
        }
        for (key, v) in [
            (
                "server.header_timeout_secs",
                self.server.header_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
        ] {
            if !(1..=86_400).contains(&v) {
                return Err(invalid(key, "must be 1 to 86400 seconds"));
            }
        }
        if self.ops.enabled {
            ListenAddr::parse(&self.ops.listen).map_err(|e| {
                invalid(
                    "ops.listen",
                    format!("{e}, or \"off\" to serve no ops endpoints"),
                )
            })?;
        }
        if !matches!(self.log.format.as_str(), "text" | "json" | "mozlog") {
            return Err(invalid(
                "log.format",
                "must be \"text\", \"json\" or \"mozlog\"",
            ));
        }
        if !self.log.file.is_empty() && !self.log.file.starts_with('/') {
            return Err(invalid(
                "log.file",
                format!(
                    "{:?} is not an absolute path; give an absolute path, or leave it empty for stderr",
                    self.log.file
                ),
            ));
        }
        crate::logging::check_level(&self.log.level).map_err(|m| invalid("log.level", m))?;
        match (
            self.server.tls_cert.is_empty(),
            self.server.tls_key.is_empty(),
        ) {
            (true, false) => {
                return Err(invalid(
                    "server.tls_cert",
                    "is empty while server.tls_key is set; set both (PEM files) or neither",
                ));
            }
            (false, true) => {
                return Err(invalid(
                    "server.tls_key",
                    "is empty while server.tls_cert is set; set both (PEM files) or neither",
                ));
            }
            _ => {}
        }
        self.pubsub.validate()?;
        self.rtc.validate()?;
        self.store.validate()?;
        if self.rtc.enabled && self.pubsub.enabled && self.rtc.prefix == self.pubsub.prefix {
            return Err(invalid("rtc.prefix", "must differ from pubsub.prefix"));
        }
        self.pairing.validate()?;
        self.cluster.validate()?;
        if self.cluster.enabled() && self.needs_store() {
            let url = self.store.resolved_url();
            if url.starts_with("sqlite:") || !url.contains("://") {
                return Err(invalid(
                    "store.url",
                    format!(
                        "a cluster (cluster.nats_url is set) needs a store every node shares, but {url:?} is a file on this node: rtc names and meeting archives would split between nodes. Use PostgreSQL, e.g. store.url = \"postgres://user@db-host/switchboard\" (SWITCHBOARD_STORE_URL)"
                    ),
                ));
            }
        }
        self.meetings.validate()?;
        self.talk.validate()?;
        if self.talk.enabled {
            for (key, other, on) in [
                ("pubsub.prefix", &self.pubsub.prefix, self.pubsub.enabled),
                ("rtc.prefix", &self.rtc.prefix, self.rtc.enabled),
            ] {
                if on && *other == self.talk.prefix {
                    return Err(invalid("talk.prefix", format!("must differ from {key}")));
                }
            }
        }
        Ok(())
    }

    /// Whether an enabled service keeps state in the store.
    pub fn needs_store(&self) -> bool {
        self.rtc.enabled || (self.meetings.enabled && !self.meetings.is_pgeu())
    }
}

/// Applies `SWITCHBOARD_<SECTION>_<KEY>` overrides. The value is read as a TOML
/// scalar when it parses as one (number, boolean), else as a string; keys whose
/// default is a list take a comma-separated value.
/// Returns every applied override as (variable, section, key).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String, String)>, ConfigError> {
    let mut applied = Vec::new();
    let defaults =
        toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Parse(e.to_string()))?;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("SWITCHBOARD_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        // Only variables naming a known section are overrides; others (SWITCHBOARD_CONFIG,
        // test helpers' variables) are not ours to judge.
        let Some((section, key)) = defaults.keys().find_map(|section| {
            let key = lower.strip_prefix(section.as_str())?.strip_prefix('_')?;
            Some((section.clone(), key.to_owned()))
        }) else {
            continue;
        };
        // Keys without a default (optional ones) are not in `defaults`; the final parse
        // with `deny_unknown_fields` rejects a key that does not exist at all.
        let default = defaults.get(&section).and_then(|t| t.get(&key)).cloned();
        applied.push((name.clone(), section.clone(), key.clone()));
        let value = match default {
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            Some(toml::Value::String(_)) => toml::Value::String(raw),
            None => infer_scalar(raw),
            Some(_) => infer_scalar(raw),
        };
        let sec = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = sec {
            t.insert(key, value);
        }
    }
    Ok(applied)
}

/// A TOML scalar (number, boolean) if `raw` is one, else the string itself.
fn infer_scalar(raw: String) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or(toml::Value::String(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_str(s: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir =
            std::env::temp_dir().join(format!("sb-cfg-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
        let r = Config::load(
            Some(&p),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen, ["127.0.0.1:8199"]);
        assert_eq!(c.pubsub.prefix, "/pubsub");
    }

    #[test]
    fn the_example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../switchboard.example.toml");
        let c = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(c.pubsub.prefix, "/pubsub");
    }

    #[test]
    fn a_cluster_refuses_a_node_local_store_for_native_meetings() {
        let base = "[rtc]\nenabled = false\n[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n";
        let e = load_str(base, &[]).unwrap_err().to_string();
        assert!(e.contains("store.url") && e.contains("meeting"), "{e}");
        let pg = format!("{base}[store]\nurl = \"postgres://u@db/sb\"\n");
        load_str(&pg, &[]).expect("PostgreSQL is shared");
        let pgeu =
            format!("{base}[meetings]\nschema = \"pgeu\"\npgeu_url = \"postgres://u@db/pgeu\"\n");
        load_str(&pgeu, &[]).expect("pgeu-system's database is shared and no store is opened");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = load_str("[pubsub]\nmax_mesage = 5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_mesage"), "{e}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = load_str("[pubsubb]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("pubsubb"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = load_str("[pubsub]\nmax_message = \"big\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_message"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = load_str("[pubsub]\nprefix = \"nope/\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("pubsub.prefix"), "{e}");
        let e = load_str("[server]\nlisten = [\"8080\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e = load_str("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.trusted_proxies"), "{e}");
        for key in [
            "header_timeout_secs",
            "idle_timeout_secs",
            "body_timeout_secs",
        ] {
            let e = load_str(&format!("[server]\n{key} = 0\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("server.{key}")), "{e}");
        }
    }

    #[test]
    fn history_tables_parse_and_are_checked() {
        let table = |body: &str| format!("[[pubsub.history]]\n{body}\n");
        let ok = table("prefix = \"/feed/\"\nmax_messages = 100\nmax_age_secs = 60");
        let two = format!(
            "{ok}{}",
            table("prefix = \"/feed/big/\"\nmax_messages = 10000\nmax_age_secs = 1")
        );
        let c = load_str(&two, &[]).unwrap();
        assert_eq!(c.pubsub.history.len(), 2);
        assert_eq!(c.pubsub.service_config().history, ["/feed/", "/feed/big/"]);
        let r = c.pubsub.retentions();
        assert_eq!(r[0].prefix, "pubsub:/feed/");
        assert_eq!(r[1].max_age, std::time::Duration::from_secs(1));
        assert!(
            Config::default().pubsub.history.is_empty(),
            "off by default"
        );
        for (body, key, says) in [
            (
                "prefix = \"feed/\"\nmax_messages = 1\nmax_age_secs = 1",
                "pubsub.history.prefix",
                "must start with '/'",
            ),
            (
                "prefix = \"/f/\"\nmax_messages = 0\nmax_age_secs = 1",
                "pubsub.history.max_messages",
                "between 1 and 10000",
            ),
            (
                "prefix = \"/f/\"\nmax_messages = 10001\nmax_age_secs = 1",
                "pubsub.history.max_messages",
                "between 1 and 10000",
            ),
            (
                "prefix = \"/f/\"\nmax_messages = 5\nmax_age_secs = 0",
                "pubsub.history.max_age_secs",
                "at least 1",
            ),
            ("prefix = \"/f/\"\nmax_messages = 5", "max_age_secs", ""),
            (
                "prefix = \"/f/\"\nmax_messages = 5\nmax_age_secs = 1\nkeep = 1",
                "keep",
                "",
            ),
        ] {
            let e = load_str(&table(body), &[]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{body}: {e}");
        }
        let twice = format!("{ok}{ok}");
        let e = load_str(&twice, &[]).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn personas_take_the_cluster_from_the_environment_and_are_checked_like_serve() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let base = Config::default();
        let same = base
            .clone()
            .with_cluster_env(env(&[("SWITCHBOARD_PUBSUB_PREFIX", "/x")]));
        assert_eq!(same.unwrap(), base, "only the cluster's variables apply");
        let mut stateless = Config::default();
        stateless.rtc.enabled = false;
        stateless.meetings.enabled = false;
        let c = stateless
            .with_cluster_env(env(&[
                (
                    "SWITCHBOARD_CLUSTER_NATS_URL",
                    "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
                ),
                ("SWITCHBOARD_CLUSTER_SUBJECT_PREFIX", "blue"),
            ]))
            .unwrap();
        assert_eq!(c.cluster.subject_prefix, "blue");
        assert!(c.cluster.enabled());
        // A node-local SQLite store in a cluster is refused, as for `serve`.
        let mut rtc = Config::default();
        rtc.rtc.enabled = true;
        rtc.store.url = "sqlite:./names.sqlite3".into();
        let e = rtc
            .with_cluster_env(env(&[(
                "SWITCHBOARD_CLUSTER_NATS_URL",
                "nats://127.0.0.1:4222",
            )]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url"), "{e}");
        let e = Config::default()
            .with_cluster_env(env(&[("SWITCHBOARD_CLUSTER_NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SWITCHBOARD_CLUSTER_NOPE"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_lists_split_on_commas() {
        let c = load_str(
            "[pubsub]\nmax_message = 10\n",
            &[
                ("SWITCHBOARD_PUBSUB_MAX_MESSAGE", "20"),
                ("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:1, /tmp/x.sock"),
                ("SWITCHBOARD_PUBSUB_PREFIX", ""),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.pubsub.max_message, 20);
        assert_eq!(c.server.listen, ["127.0.0.1:1", "/tmp/x.sock"]);
        assert_eq!(c.pubsub.prefix, "");
    }

    #[test]
    fn variables_outside_the_config_sections_are_not_overrides() {
        let c = load_str(
            "",
            &[
                ("SWITCHBOARD_CONFIG", "/x.toml"),
                ("SWITCHBOARD_TEST_PG_URL", "postgres://x"),
            ],
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn unknown_env_override_is_an_error() {
        let e = load_str("", &[("SWITCHBOARD_PUBSUB_NOPE", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SWITCHBOARD_PUBSUB_NOPE"), "{e}");
    }

    #[test]
    fn bad_env_value_names_the_key() {
        let e = load_str("", &[("SWITCHBOARD_PUBSUB_MAX_POST", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_post"), "{e}");
    }
}
