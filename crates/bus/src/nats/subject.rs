//! Topics as NATS subjects, and the names of everything the cluster keeps in NATS.
//!
//! A topic `namespace:rest` becomes one token for the namespace and one for
//! `rest` as unpadded base64url behind an `e` (so no topic can make an empty
//! token, a wildcard or a dot). Under the configured prefix `P`:
//!
//! | subject | carries |
//! |---|---|
//! | `P.t.<ns>.<tok>` | a topic's messages (FIFO publishes, and what the sequencer republishes) |
//! | `P.s.<class>.<ns>.<tok>` | an ordered topic's publishes, into the JetStream stream of its class, which republishes them to `P.t.…` in one order |
//! | `P.w.<ns>.<tok>` | interest announcements for an ordered topic (the fast-path handshake) |
//! | `P.node.hb` | node heartbeats, hellos and goodbyes |
//! | `P.node.stats` | requests for every node's report (cluster-wide counts for the console) |
//!
//! Streams and KV buckets are named `<P with dots as _>_…`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The subjects of one cluster (one prefix).
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
    names: String,
}

/// Why a subject prefix is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "subject prefix {0:?} must be dot-separated tokens of letters, digits, '-' and '_' (for example \"switchboard\")"
)]
pub struct PrefixError(pub String);

impl Subjects {
    /// Subjects under `prefix` (validated: NATS tokens of `[A-Za-z0-9_-]`).
    pub(crate) fn new(prefix: &str) -> Result<Self, PrefixError> {
        let ok = !prefix.is_empty()
            && prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(PrefixError(prefix.to_owned()));
        }
        Ok(Subjects {
            prefix: prefix.to_owned(),
            names: prefix.replace('.', "_"),
        })
    }

    /// `namespace` and the encoded rest of `topic`.
    fn tokens(topic: &str) -> (String, String) {
        let (ns, rest) = topic.split_once(':').unwrap_or(("_", topic));
        let ns: String = ns
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                    b as char
                } else {
                    '_'
                }
            })
            .collect();
        let ns = if ns.is_empty() { "_".to_owned() } else { ns };
        (ns, format!("e{}", URL_SAFE_NO_PAD.encode(rest)))
    }

    /// Where a topic's messages are delivered.
    pub(crate) fn data(&self, topic: &str) -> String {
        let (ns, tok) = Self::tokens(topic);
        format!("{}.t.{ns}.{tok}", self.prefix)
    }

    /// Where an ordered topic's publishes go (into the stream of `class`).
    pub(crate) fn sequenced(&self, class: &str, topic: &str) -> String {
        let (ns, tok) = Self::tokens(topic);
        format!("{}.s.{class}.{ns}.{tok}", self.prefix)
    }

    /// The sequencer input subjects of `class` (a stream's subject filter).
    pub(crate) fn sequenced_all(&self, class: &str) -> String {
        format!("{}.s.{class}.>", self.prefix)
    }

    /// Where the sequencer of any class republishes to.
    pub(crate) fn data_all(&self) -> String {
        format!("{}.t.>", self.prefix)
    }

    /// Interest announcements of an ordered topic.
    pub(crate) fn who(&self, topic: &str) -> String {
        let (ns, tok) = Self::tokens(topic);
        format!("{}.w.{ns}.{tok}", self.prefix)
    }

    /// Node heartbeats.
    pub(crate) fn heartbeat(&self) -> String {
        format!("{}.node.hb", self.prefix)
    }

    /// Requests for every node's report (cluster-wide counts).
    pub(crate) fn stats(&self) -> String {
        format!("{}.node.stats", self.prefix)
    }

    /// A JetStream stream or KV bucket name for `what` (letters, digits, `_`).
    pub(crate) fn name(&self, what: &str) -> String {
        format!("{}_{what}", self.names)
    }

    /// A record key as a KV key (unpadded base64url: always valid).
    pub(crate) fn kv_key(key: &str) -> String {
        format!("k{}", URL_SAFE_NO_PAD.encode(key))
    }

    /// The record key of a KV key made by [`Subjects::kv_key`].
    pub(crate) fn record_key(kv_key: &str) -> Option<String> {
        let b = URL_SAFE_NO_PAD.decode(kv_key.strip_prefix('k')?).ok()?;
        String::from_utf8(b).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_make_valid_tokens_whatever_they_hold() {
        let s = Subjects::new("sb").unwrap();
        for topic in [
            "pubsub:/a b.c*>",
            "pubsub:",
            "rtc:user:alice",
            "weird ns:x",
            "nocolon",
        ] {
            let subj = s.data(topic);
            assert!(
                subj.split('.').all(|t| !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
                "{topic} -> {subj}"
            );
        }
        assert_eq!(s.data("pubsub:/x"), "sb.t.pubsub.eL3g");
        assert_eq!(s.sequenced("o", "pubsub:/x"), "sb.s.o.pubsub.eL3g");
        assert_ne!(s.data("pubsub:/a"), s.data("pubsub:/b"));
    }

    #[test]
    fn prefixes_are_checked_and_names_drop_dots() {
        assert!(Subjects::new("acme.switchboard").is_ok());
        assert_eq!(
            Subjects::new("acme.sb").unwrap().name("claims"),
            "acme_sb_claims"
        );
        for bad in ["", "a..b", "a.*", "a b", ".a"] {
            assert!(Subjects::new(bad).is_err(), "{bad:?}");
        }
        let k = Subjects::kv_key("ns/ä b");
        assert_eq!(Subjects::record_key(&k).as_deref(), Some("ns/ä b"));
    }
}
