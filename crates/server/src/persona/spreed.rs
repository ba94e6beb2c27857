//! The nextcloud-spreed-signaling persona: `switchboard signaling --config
//! server.conf` (also `switchboard nextcloud-spreed-signaling …`) reads the
//! original's INI file and serves the talk service's paths at the root
//! (`/spreed`, `/api/v1/…`).
//!
//! First slice: what the service builds so far is read (`[http] listen`,
//! `[backend]` with `backends` and a section per backend (`url` of 0.4.1 or
//! `urls`, `secret`), `allowall` + `secret`, `timeout`, `connectionsperhost`;
//! `[nats] url` unset, `:loopback:` or `nats://loopback`), `$(VAR)` takes the
//! environment variable. What the service does not build yet is refused when
//! it would change behaviour (`[https] listen`, a real `[nats] url`) and
//! warned about otherwise (`[mcu] type`, `[clients] internalsecret`,
//! `sessionlimit`, `[grpc]`, `[etcd]`). Invalid values fail, naming the
//! section and key.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, ConfigError, TalkBackendSection};

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not `[section]`, `key = value`, a comment or empty.
    #[error("{path}:{line}: not a section, a `key = value` line or a comment")]
    Syntax {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
    },
    /// A value is not usable.
    #[error("{path}: [{section}] {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Its section.
        section: String,
        /// Its key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The resulting configuration did not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// An INI file: section → key → value (keys lower-cased, values trimmed,
/// `$(VAR)` replaced).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ini {
    /// Parses `text`; `env` resolves `$(VAR)`.
    pub fn parse(
        path: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Ini, PersonaError> {
        let mut ini = Ini::default();
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_owned();
                ini.sections.entry(section.clone()).or_default();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(PersonaError::Syntax {
                    path: path.to_owned(),
                    line: n + 1,
                });
            };
            let key = key.trim().to_ascii_lowercase();
            let value = expand(value.trim(), env).map_err(|var| PersonaError::Invalid {
                path: path.to_owned(),
                section: section.clone(),
                key: key.clone(),
                message: format!("the environment variable {var} in $({var}) is not set"),
            })?;
            ini.sections
                .entry(section.clone())
                .or_default()
                .insert(key, value);
        }
        Ok(ini)
    }

    /// The value of `key` in `section` (`None` when absent or empty).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)?
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn has_section(&self, section: &str) -> bool {
        self.sections.get(section).is_some_and(|s| !s.is_empty())
    }
}

/// Replaces each `$(VAR)` with the variable's value; `Err(VAR)` when it is unset.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        let Some(len) = rest[start + 2..].find(')') else {
            break;
        };
        let var = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        out.push_str(&env(var).ok_or_else(|| var.to_owned())?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The configuration and the start-up warnings for `server.conf` at `path`.
pub fn config(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), PersonaError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PersonaError::Read {
        path: shown.clone(),
        source,
    })?;
    let ini = Ini::parse(&shown, &text, env)?;
    from_ini(&shown, &ini)
}

/// [`config`] for a parsed file.
pub fn from_ini(shown: &str, ini: &Ini) -> Result<(Config, Vec<String>), PersonaError> {
    let invalid = |section: &str, key: &str, message: String| PersonaError::Invalid {
        path: shown.to_owned(),
        section: section.to_owned(),
        key: key.to_owned(),
        message,
    };
    let mut warnings = Vec::new();
    let mut c = Config::persona();
    c.talk.enabled = true;
    c.talk.prefix = String::new();
    // The original has no separate metrics listener; ours is on only with --ops-listen.
    c.ops.enabled = false;

    if ini.get("https", "listen").is_some() {
        return Err(invalid(
            "https",
            "listen",
            "HTTPS is not built into this persona yet: terminate TLS in a reverse proxy and use [http] listen".into(),
        ));
    }
    let Some(listen) = ini.get("http", "listen") else {
        return Err(invalid(
            "http",
            "listen",
            "is not set, so nothing would be served; set it, e.g. 127.0.0.1:8080".into(),
        ));
    };
    c.server.listen = listen
        .split(',')
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();

    let boolean = |section: &str, key: &str| -> Result<bool, PersonaError> {
        match ini
            .get(section, key)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") | Some("0") | Some("no") | Some("off") => Ok(false),
            Some("true") | Some("1") | Some("yes") | Some("on") => Ok(true),
            Some(other) => Err(invalid(
                section,
                key,
                format!("{other:?} is not a boolean (true or false)"),
            )),
        }
    };
    let number = |section: &str, key: &str| -> Result<Option<u64>, PersonaError> {
        ini.get(section, key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| invalid(section, key, format!("{v:?} is not a whole number")))
            })
            .transpose()
    };

    c.talk.allow_all = boolean("backend", "allowall")?;
    c.talk.secret = ini.get("backend", "secret").unwrap_or("").to_owned();
    if let Some(t) = number("backend", "timeout")? {
        c.talk.backend_timeout_secs = t;
    }
    if let Some(n) = number("backend", "connectionsperhost")? {
        c.talk.connections_per_host = n as usize;
    }
    if let Some(kind) = ini.get("backend", "backendtype")
        && kind != "static"
    {
        return Err(invalid(
            "backend",
            "backendtype",
            format!("{kind:?} is not built yet; only static backends are"),
        ));
    }
    let ids: Vec<String> = ini
        .get("backend", "backends")
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for id in &ids {
        let urls: Vec<String> = ini
            .get(id, "urls")
            .or_else(|| ini.get(id, "url"))
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(invalid(
                id,
                "url",
                format!("backend {id:?} (listed in [backend] backends) has no url or urls"),
            ));
        }
        if number(id, "sessionlimit")?.is_some_and(|n| n > 0) {
            warnings.push(format!(
                "[{id}] sessionlimit is not enforced yet by this server"
            ));
        }
        c.talk.backends.push(TalkBackendSection {
            id: id.clone(),
            urls,
            secret: ini.get(id, "secret").unwrap_or("").to_owned(),
        });
    }
    if ids.is_empty() && !c.talk.allow_all {
        return Err(invalid(
            "backend",
            "backends",
            "lists no backend and allowall is off, so no Nextcloud could use this server".into(),
        ));
    }

    match ini.get("nats", "url") {
        None | Some(":loopback:") | Some("nats://loopback") => {}
        Some(url) => {
            return Err(invalid(
                "nats",
                "url",
                format!(
                    "{url:?}: talk on several nodes is not built yet; leave it unset (or \
                     :loopback:) for one node"
                ),
            ));
        }
    }
    if let Some(kind) = ini.get("mcu", "type") {
        warnings.push(format!(
            "[mcu] type = {kind}: no MCU support yet; calls run peer to peer"
        ));
    }
    if ini.get("clients", "internalsecret").is_some() {
        warnings.push(
            "[clients] internalsecret: internal clients are not supported yet and are refused"
                .into(),
        );
    }
    for section in ["grpc", "etcd", "turn", "stats", "geoip", "federation"] {
        if ini.has_section(section) {
            warnings.push(format!("[{section}] is not implemented yet and is ignored"));
        }
    }
    c.validate()?;
    Ok((c, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const BASIC: &str = "\
# a comment
[http]
listen = 127.0.0.1:8080

[sessions]
hashkey = 0123456789abcdef0123456789abcdef

[backend]
backends = one, two
timeout = 5
connectionsperhost = 4

[one]
url = https://cloud.example.com
secret = $(ONE_SECRET)

[two]
urls = https://a.example.com/, https://b.example.com/nc
secret = two-secret

[nats]
url = :loopback:
";

    #[test]
    fn the_originals_file_maps_onto_the_talk_service() {
        let env = |v: &str| (v == "ONE_SECRET").then(|| "from-env".to_owned());
        let ini = Ini::parse("server.conf", BASIC, &env).unwrap();
        let (c, warnings) = from_ini("server.conf", &ini).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.talk.enabled);
        assert_eq!(c.talk.prefix, "");
        assert_eq!(c.server.listen, ["127.0.0.1:8080"]);
        assert_eq!(c.talk.backend_timeout_secs, 5);
        assert_eq!(c.talk.connections_per_host, 4);
        assert_eq!(c.talk.backends.len(), 2);
        assert_eq!(c.talk.backends[0].secret, "from-env");
        assert_eq!(c.talk.backends[1].urls.len(), 2);
        assert!(!c.pubsub.enabled && !c.rtc.enabled && !c.console.enabled);
        let b = c.talk.backends();
        assert_eq!(
            b.for_url("https://b.example.com/nc/")
                .map(|b| b.id.clone())
                .as_deref(),
            Some("two")
        );
    }

    #[test]
    fn bad_values_name_the_section_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[backend]\nbackends = x\n[x]\nurl = https://a/\nsecret = s\n",
                "[http] listen",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[backend]\nallowall = maybe\n",
                "[backend] allowall",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[backend]\nbackends = x\ntimeout = soon\n[x]\nurl = https://a/\nsecret = s\n",
                "[backend] timeout",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[backend]\nbackends = x\n",
                "[x] url",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[backend]\n",
                "[backend] backends",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[backend]\nallowall = true\nsecret = s\n[nats]\nurl = nats://127.0.0.1:4222\n",
                "[nats] url",
            ),
            (
                "[http]\nlisten = 127.0.0.1:1\n[https]\nlisten = 127.0.0.1:2\n",
                "[https] listen",
            ),
        ];
        for (text, want) in cases {
            let e = Ini::parse("server.conf", text, &no_env)
                .and_then(|ini| from_ini("server.conf", &ini))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = Ini::parse("server.conf", "[x]\nkey = $(NOT_SET_ANYWHERE)\n", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOT_SET_ANYWHERE"), "{e}");
        let e = Ini::parse("server.conf", "[x]\njust words\n", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.conf:2"), "{e}");
    }

    #[test]
    fn what_is_not_built_is_warned_about() {
        let text = "[http]\nlisten = 127.0.0.1:1\n[backend]\nallowall = true\nsecret = s\n\
                    [mcu]\ntype = janus\n[clients]\ninternalsecret = x\n[grpc]\nlisten = 0.0.0.0:9090\n";
        let ini = Ini::parse("server.conf", text, &no_env).unwrap();
        let (c, warnings) = from_ini("server.conf", &ini).unwrap();
        assert!(c.talk.allow_all);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }
}
