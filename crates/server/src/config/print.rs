//! `switchboard config print`: the effective configuration as TOML, every key
//! with its value and, in a comment, where the value came from.
//!
//! Generic over the configuration's serde form: a new section or key is
//! printed without code here. Secrets are redacted by name: a key whose name
//! contains `secret`, `token` or `password` prints `"<redacted>"` when set, and
//! the password of any `scheme://user:password@host` value is replaced. Name a
//! new secret key accordingly (e.g. `…_secret`, `…_token`).

use super::{Config, ConfigError, Provenance, Source};

/// Key-name parts that mark a secret.
const SECRET_WORDS: &[&str] = &["secret", "token", "password"];

/// The text shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Renders `cfg` as commented TOML; `provenance` says where each value came from.
pub fn render(cfg: &Config, provenance: &Provenance) -> Result<String, ConfigError> {
    let body = toml::to_string(cfg).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let mut out = String::from(
        "# The effective Switchboard configuration: built-in defaults < config file <\n\
         # SWITCHBOARD_<SECTION>_<KEY> environment variables < command-line flags.\n\
         # Each comment says where the value came from. Secrets are redacted.\n",
    );
    let mut section = String::new();
    for line in body.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).to_owned();
            out.push('\n');
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            if !trimmed.is_empty() {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        };
        let dotted = if section.is_empty() {
            key.trim().to_owned()
        } else {
            format!("{section}.{}", key.trim())
        };
        let value = redact(key.trim(), value);
        let source = match provenance.source(&dotted) {
            Source::Default => "default".to_owned(),
            other => other.to_string(),
        };
        out.push_str(&format!("{key} = {value}  # {source}\n"));
    }
    Ok(out)
}

/// The printed value of `key`: redacted when it is a secret.
pub(crate) fn redact(key: &str, value: &str) -> String {
    let lower = key.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| lower.contains(w)) && value != "\"\"" {
        return format!("\"{REDACTED}\"");
    }
    redact_url_password(value)
}

/// Replaces the password in every `scheme://user:password@` inside `value`.
fn redact_url_password(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '"', '?', '#', ',']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                out.push_str(&format!("{user}:{REDACTED}@{host}"));
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_printed_with_its_source_and_the_output_reloads() {
        let mut cfg = Config::default();
        let mut p = Provenance::default();
        cfg.pubsub.max_post = 1000;
        p.set(
            "pubsub.max_post".into(),
            Source::File("/etc/sb.toml".into()),
        );
        cfg.server.listen = vec!["127.0.0.1:1".into()];
        p.set("server.listen".into(), Source::Flag("--listen".into()));
        cfg.rtc.cookie_secret = "0123456789abcdef0123".into();
        p.set(
            "rtc.cookie_secret".into(),
            Source::Env("SWITCHBOARD_RTC_COOKIE_SECRET".into()),
        );
        cfg.store.url = "postgres://sb:hunter2hunter2@db:5432/sb".into();
        let text = render(&cfg, &p).unwrap();
        assert!(
            text.contains("max_post = 1000  # file /etc/sb.toml"),
            "{text}"
        );
        assert!(
            text.contains("listen = [\"127.0.0.1:1\"]  # flag --listen"),
            "{text}"
        );
        assert!(text.contains(
            "cookie_secret = \"<redacted>\"  # environment SWITCHBOARD_RTC_COOKIE_SECRET"
        ));
        assert!(text.contains("admin_token = \"\"  # default"), "{text}");
        assert!(text.contains("url = \"postgres://sb:<redacted>@db:5432/sb\"  # default"));
        assert!(!text.contains("hunter2") && !text.contains("0123456789abcdef"));
        // Every key of every section is there.
        let printed: toml::Table = toml::from_str(&text).unwrap();
        let full = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &full {
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    printed[section].as_table().unwrap().contains_key(key),
                    "{section}.{key} missing"
                );
            }
        }
    }

    #[test]
    fn url_passwords_are_redacted_wherever_they_are() {
        assert_eq!(
            redact_url_password("[\"nats://a:b@h:4222\", \"nats://h2\"]"),
            "[\"nats://a:<redacted>@h:4222\", \"nats://h2\"]"
        );
        assert_eq!(redact_url_password("\"http://h/x\""), "\"http://h/x\"");
        assert_eq!(redact("nats_token", "\"\""), "\"\"");
    }
}
