//! Pairing channel identifiers: generation, canonical text form and strict parsing.
//!
//! A [`ChannelId`] is 16 bytes from a CSPRNG. Its one canonical text form is
//! base64url without padding, always 22 characters (e.g. `xdp7DlFoK9h6sMtcJJWTqg`);
//! that string is what clients receive in the first frame and use as their TLS
//! PSK identity, so every accepted spelling must map back to exactly it.
//!
//! Parsing accepts the canonical form with any number of trailing `=` (the padded
//! form `…==` is what some clients produce) and nothing else. Unlike the original
//! channelserver, a short id is a typed error rather than a panic, an over-long id
//! is rejected rather than truncated to its first 16 bytes, and an id that is not
//! base64url is rejected rather than silently turned into a new channel.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Serialize, Serializer};

/// Number of random bytes in a channel id.
pub const CHANNEL_ID_BYTES: usize = 16;

/// Length of the canonical text form: 16 bytes as unpadded base64 take 22 chars.
pub const CHANNEL_ID_CHARS: usize = 22;

/// Identifier of one pairing channel: 16 random bytes.
///
/// `Display` gives the canonical 22-char base64url form; `FromStr` parses it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId([u8; CHANNEL_ID_BYTES]);

/// Why a string is not a valid channel id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelIdError {
    /// Nothing left after stripping trailing `=`.
    #[error("channel id is empty")]
    Empty,
    /// Valid base64url characters, but not the 22 that encode exactly 16 bytes.
    #[error("channel id has {chars} characters, expected {CHANNEL_ID_CHARS}")]
    BadLength {
        /// Number of characters after stripping trailing `=`.
        chars: usize,
    },
    /// A character outside the base64url alphabet, or a non-canonical final character.
    #[error("channel id is not canonical unpadded base64url")]
    NotBase64,
}

impl ChannelId {
    /// Draws a fresh id from the thread-local CSPRNG (`rand::rng()`, ChaCha12
    /// seeded from the OS).
    pub fn random() -> Self {
        let mut bytes = [0u8; CHANNEL_ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw id bytes (e.g. from storage or a bus message).
    pub const fn from_bytes(bytes: [u8; CHANNEL_ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    pub const fn as_bytes(&self) -> &[u8; CHANNEL_ID_BYTES] {
        &self.0
    }

    /// Parses the canonical form, tolerating trailing `=` padding.
    ///
    /// Same as [`str::parse`]; provided for call sites that read better without turbofish.
    pub fn parse(text: &str) -> Result<Self, ChannelIdError> {
        let unpadded = text.trim_end_matches('=');
        if unpadded.is_empty() {
            return Err(ChannelIdError::Empty);
        }
        // Reject foreign characters before looking at the length, so `!!!!` reads as
        // "not base64" rather than "wrong length", and never decode long input.
        if !unpadded.bytes().all(is_base64url_byte) {
            return Err(ChannelIdError::NotBase64);
        }
        if unpadded.len() != CHANNEL_ID_CHARS {
            return Err(ChannelIdError::BadLength {
                chars: unpadded.len(),
            });
        }
        // The engine rejects a last character with non-zero trailing bits, which keeps
        // the text form canonical: at most one spelling (plus padding) per id.
        let decoded = URL_SAFE_NO_PAD
            .decode(unpadded)
            .map_err(|_| ChannelIdError::NotBase64)?;
        let bytes: [u8; CHANNEL_ID_BYTES] =
            decoded.try_into().map_err(|_| ChannelIdError::BadLength {
                chars: unpadded.len(),
            })?;
        Ok(Self(bytes))
    }
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; CHANNEL_ID_CHARS];
        match URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf) {
            Ok(CHANNEL_ID_CHARS) => {}
            _ => return Err(fmt::Error),
        }
        // The base64 alphabet is ASCII, so this cannot fail; map it to fmt::Error anyway.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({self})")
    }
}

impl FromStr for ChannelId {
    type Err = ChannelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ChannelId {
    /// Serializes as the canonical 22-char string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const SAMPLE: &str = "xdp7DlFoK9h6sMtcJJWTqg";

    #[test]
    fn random_ids_are_22_chars_and_round_trip() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = ChannelId::random();
            let text = id.to_string();
            assert_eq!(text.len(), CHANNEL_ID_CHARS);
            assert!(text.bytes().all(is_base64url_byte), "{text}");
            assert_eq!(text.parse::<ChannelId>(), Ok(id));
            assert!(seen.insert(id), "duplicate id {text}");
        }
    }

    #[test]
    fn parse_table() {
        use ChannelIdError::*;
        let cases: &[(&str, Result<&str, ChannelIdError>)] = &[
            // Canonical form and padded spellings all map to the canonical id.
            (SAMPLE, Ok(SAMPLE)),
            ("xdp7DlFoK9h6sMtcJJWTqg==", Ok(SAMPLE)),
            ("xdp7DlFoK9h6sMtcJJWTqg=", Ok(SAMPLE)),
            ("xdp7DlFoK9h6sMtcJJWTqg====", Ok(SAMPLE)),
            ("AAAAAAAAAAAAAAAAAAAAAA", Ok("AAAAAAAAAAAAAAAAAAAAAA")),
            ("_____________________w", Ok("_____________________w")),
            ("--------------------_w", Ok("--------------------_w")),
            // Empty.
            ("", Err(Empty)),
            ("=", Err(Empty)),
            ("==", Err(Empty)),
            // Short: the original panicked on these.
            ("AAAA", Err(BadLength { chars: 4 })),
            ("xdp7DlFoK9h6sMtcJJWTq", Err(BadLength { chars: 21 })),
            // Long: the original silently used the first 16 bytes.
            ("xdp7DlFoK9h6sMtcJJWTqgA", Err(BadLength { chars: 23 })),
            (
                "0123456789abcdef0123456789abcdef",
                Err(BadLength { chars: 32 }),
            ),
            (&"x".repeat(30), Err(BadLength { chars: 30 })),
            // Not base64url: the original silently created a new channel.
            ("!!!!notb64", Err(NotBase64)),
            ("xdp7DlFoK9h6sMtcJJWT+g", Err(NotBase64)),
            ("xdp7DlFoK9h6sMtcJJWT/g", Err(NotBase64)),
            ("xdp7DlFoK9h6sMtcJJWTq g", Err(NotBase64)),
            (" xdp7DlFoK9h6sMtcJJWTqg", Err(NotBase64)),
            ("xdp7DlFoK9h6sMtcJJWTqg==x", Err(NotBase64)),
            ("xdp7DlFoK9h6=sMtcJJWTqg", Err(NotBase64)),
            ("xdp7DlFoK9h6sMtcJJWTqé", Err(NotBase64)),
            // Right length, but the last char carries non-zero trailing bits: not canonical.
            ("xdp7DlFoK9h6sMtcJJWTqh", Err(NotBase64)),
            ("AAAAAAAAAAAAAAAAAAAAAB", Err(NotBase64)),
        ];
        for (input, expected) in cases {
            let got = ChannelId::parse(input).map(|id| id.to_string());
            let expected = expected.map(str::to_owned);
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn display_of_known_bytes() {
        assert_eq!(
            ChannelId::from_bytes([0; 16]).to_string(),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            ChannelId::from_bytes([0xff; 16]).to_string(),
            "_____________________w"
        );
        let id = ChannelId::from_bytes([0xfb; 16]);
        assert_eq!(id.to_string(), "-_v7-_v7-_v7-_v7-_v7-w");
        assert_eq!(id.as_bytes(), &[0xfb; 16]);
        assert_eq!(format!("{id:?}"), "ChannelId(-_v7-_v7-_v7-_v7-_v7-w)");
    }

    #[test]
    fn serializes_as_canonical_string() {
        let id: ChannelId = "xdp7DlFoK9h6sMtcJJWTqg==".parse().expect("valid id");
        assert_eq!(
            serde_json::to_string(&id).expect("serialize"),
            format!("\"{SAMPLE}\"")
        );
    }

    #[test]
    fn errors_have_readable_messages() {
        assert_eq!(ChannelIdError::Empty.to_string(), "channel id is empty");
        assert_eq!(
            ChannelIdError::BadLength { chars: 4 }.to_string(),
            "channel id has 4 characters, expected 22"
        );
    }
}
