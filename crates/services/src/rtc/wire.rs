//! The rtc wire format: what a client sends, what its target receives, and
//! the `TARGET_NOT_FOUND` answer.
//!
//! In: `{"target":string,"type":string,"payload":any}` in a text or binary
//! frame. As the original (Go's `encoding/json`): keys match
//! case-insensitively (ASCII), unknown keys are ignored, the last of duplicate
//! keys wins, `null` strings are empty, and only the first JSON value of a
//! frame is read. Anything else is an error ([`ParseError`]).
//!
//! Out: `{"originator","target","type","payload"}` in that key order, with
//! the payload copied byte for byte from the input (a missing payload is
//! `null`) and, when configured, a trailing `\n` as the original writes. The
//! three strings are escaped as Go escapes them (`<`, `>`, `&`, U+2028 and
//! U+2029 as `\uXXXX`), so for the envelope the bytes match the original's.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use switchboard_core::Frame;

/// One inbound message, borrowing its payload from the frame.
#[derive(Debug, Default)]
pub struct Inbound<'a> {
    /// The user to deliver to (empty when missing or `null`).
    pub target: String,
    /// The message type, opaque to the server (empty when missing).
    pub kind: String,
    /// The payload exactly as sent; `None` when the key is missing.
    pub payload: Option<&'a RawValue>,
}

/// Why a frame is not a message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The frame holds no JSON value at all.
    #[error("empty message")]
    Empty,
    /// The first JSON value is malformed or is not an object of the message shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Reads the first JSON value of `frame` as a message.
pub fn parse(frame: &[u8]) -> Result<Inbound<'_>, ParseError> {
    serde_json::Deserializer::from_slice(frame)
        .into_iter::<Inbound<'_>>()
        .next()
        .ok_or(ParseError::Empty)?
        .map_err(ParseError::from)
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Inbound<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InboundVisitor(std::marker::PhantomData))
    }
}

struct InboundVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for InboundVisitor<'a> {
    type Value = Inbound<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object {\"target\",\"type\",\"payload\"}")
    }

    /// A top-level `null` decodes to an empty message, as in Go.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Inbound::default())
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut m = Inbound::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.eq_ignore_ascii_case("target") {
                m.target = map.next_value::<Option<String>>()?.unwrap_or_default();
            } else if key.eq_ignore_ascii_case("type") {
                m.kind = map.next_value::<Option<String>>()?.unwrap_or_default();
            } else if key.eq_ignore_ascii_case("payload") {
                m.payload = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(m)
    }
}

/// Appends `s` as a JSON string, escaped as Go's `encoding/json` does.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => push_unicode_escape(out, c),
            c if u32::from(c) < 0x20 => push_unicode_escape(out, c),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_unicode_escape(out: &mut String, c: char) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "\\u{:04x}", u32::from(c));
}

/// The frame delivered to the target: `originator` is the sender's name.
pub fn forward(originator: &str, m: &Inbound<'_>, newline: bool) -> Frame {
    let payload = m.payload.map_or("null", RawValue::get);
    let mut out = String::with_capacity(
        64 + originator.len() + m.target.len() + m.kind.len() + payload.len(),
    );
    out.push_str("{\"originator\":");
    push_json_string(&mut out, originator);
    out.push_str(",\"target\":");
    push_json_string(&mut out, &m.target);
    out.push_str(",\"type\":");
    push_json_string(&mut out, &m.kind);
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push('}');
    if newline {
        out.push('\n');
    }
    Frame::text(out)
}

/// The answer to a message whose target is not online.
pub fn target_not_found(newline: bool) -> Frame {
    const WITH: &str = "{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n";
    let text = if newline {
        WITH
    } else {
        &WITH[..WITH.len() - 1]
    };
    Frame::Text(Bytes::from_static(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn inbound_table() {
        // (frame, target, type, payload as sent)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            (
                r#"{"target":"bob","type":"video-offer","payload":{"sdp":"v=0"}}"#,
                "bob",
                "video-offer",
                Some(r#"{"sdp":"v=0"}"#),
            ),
            (r#"{"TARGET":"bob","Type":"t"}"#, "bob", "t", None),
            (
                r#"{"target":"a","target":"b","payload":1,"extra":[1,2]}"#,
                "b",
                "",
                Some("1"),
            ),
            (
                r#"{"target":null,"type":null,"payload":null}"#,
                "",
                "",
                Some("null"),
            ),
            (r#"{"payload":[1, 2 ,3]}"#, "", "", Some("[1, 2 ,3]")),
            (
                r#"{"payload":12345678901234567890}"#,
                "",
                "",
                Some("12345678901234567890"),
            ),
            (r#"{"payload":"<x> & y"}"#, "", "", Some(r#""<x> & y""#)),
            (r#"{"target":"x"}{"target":"y"}"#, "x", "", None),
            (" \n{\"target\":\"\\u0062ob\"} trailing", "bob", "", None),
            ("null", "", "", None),
        ];
        for (frame, target, kind, payload) in cases {
            let m = parse(frame.as_bytes()).unwrap_or_else(|e| panic!("{frame}: {e}"));
            assert_eq!(m.target, *target, "{frame}");
            assert_eq!(m.kind, *kind, "{frame}");
            assert_eq!(m.payload.map(RawValue::get), *payload, "{frame}");
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        for frame in [
            "",
            "   ",
            "{",
            "not json",
            "[1,2]",
            "\"target\"",
            "42",
            r#"{"target":5}"#,
            r#"{"type":{}}"#,
            r#"{"target":"a","payload":}"#,
        ] {
            assert!(parse(frame.as_bytes()).is_err(), "{frame:?} should fail");
        }
        assert!(matches!(parse(b""), Err(ParseError::Empty)));
        assert!(parse(b"{\"target\":\"\xff\"}").is_err(), "invalid UTF-8");
    }

    #[test]
    fn forward_keeps_key_order_and_the_payload_bytes() {
        let m = Inbound {
            target: "bob".into(),
            kind: "video-offer".into(),
            payload: Some(raw(r#"{ "sdp" : "v=0\r\n", "n": [1, 2 ,3] }"#)),
        };
        assert_eq!(
            forward("alice", &m, true).payload(),
            &Bytes::from_static(
                b"{\"originator\":\"alice\",\"target\":\"bob\",\"type\":\"video-offer\",\"payload\":{ \"sdp\" : \"v=0\\r\\n\", \"n\": [1, 2 ,3] }}\n"
            )
        );
        let bare = Inbound {
            target: "bob".into(),
            ..Inbound::default()
        };
        assert_eq!(
            forward("a", &bare, false).payload(),
            &Bytes::from_static(
                b"{\"originator\":\"a\",\"target\":\"bob\",\"type\":\"\",\"payload\":null}"
            )
        );
    }

    #[test]
    fn envelope_strings_are_escaped_as_go_does() {
        let m = Inbound {
            target: "a&b".into(),
            kind: "<t>\"\\\n\u{1}\u{2028}é".into(),
            payload: None,
        };
        let f = forward("x", &m, false);
        let text = std::str::from_utf8(f.payload()).unwrap();
        assert_eq!(
            text,
            r#"{"originator":"x","target":"a\u0026b","type":"\u003ct\u003e\"\\\n\u0001\u2028é","payload":null}"#
        );
        let back: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back["type"], "<t>\"\\\n\u{1}\u{2028}é");
    }

    #[test]
    fn target_not_found_matches_the_original() {
        assert_eq!(
            target_not_found(true).payload(),
            &Bytes::from_static(
                b"{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n"
            )
        );
        assert_eq!(
            target_not_found(false).payload(),
            &Bytes::from_static(
                b"{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}"
            )
        );
    }
}
