//! The texts a `pairs` run sends and the frames it reads: message texts with
//! the bench's stamp and a checkable filler, and the two server frames (the
//! `channelid` greeting and the relay envelope), scanned without a JSON parser.

use crate::payload::{self, HEADER_LEN, Stamp};

/// The base64url alphabet the filler cycles through.
pub(super) const ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The filler byte at position `at` (counted from the start of the text) of
/// message `seq` in round `round`.
#[inline]
pub(super) fn filler(round: u64, seq: u32, at: usize) -> u8 {
    let start = round.wrapping_mul(31).wrapping_add(u64::from(seq) * 5) as usize;
    ALPHABET[start.wrapping_add(at) % ALPHABET.len()]
}

/// The text of message `stamp.seq` of round `round`: `size` characters.
pub(super) fn message_text(stamp: Stamp, round: u64, size: usize) -> String {
    let mut bytes = vec![0u8; size.max(HEADER_LEN)];
    // The buffer is at least HEADER_LEN long and the bench clock stays below
    // 2^48 ns (78 hours): encoding cannot fail.
    let _ = payload::encode_into(&mut bytes, stamp);
    for (at, b) in bytes.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = filler(round, stamp.seq, at);
    }
    // Hex digits and the base64url alphabet are ASCII.
    String::from_utf8(bytes).unwrap_or_default()
}

/// What a received message text carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    /// A stamp, and the text is exactly what was sent.
    Intact(Stamp),
    /// A stamp, but the rest of the text is not what was sent.
    Damaged(Stamp),
    /// No bench stamp at all.
    Foreign,
}

/// Checks a received message text against what round `round` sent for its
/// stamp, `size` characters long.
pub(super) fn check_text(text: &str, round: u64, size: usize) -> Text {
    let Ok(stamp) = payload::decode(text.as_bytes()) else {
        return Text::Foreign;
    };
    let bytes = text.as_bytes();
    let intact = bytes.len() == size
        && bytes
            .iter()
            .enumerate()
            .skip(HEADER_LEN)
            .all(|(at, &b)| b == filler(round, stamp.seq, at));
    if intact {
        Text::Intact(stamp)
    } else {
        Text::Damaged(stamp)
    }
}

/// The channel id announced by a first frame
/// `{"channelid":"<id>","link":"<prefix>/v1/ws/<id>"}`, if the frame is one:
/// 22 base64url characters, and a link that ends in `/v1/ws/<id>`.
pub(super) fn hello_channel(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"channelid\":\"")?;
    let (id, tail) = rest.split_at(rest.find('"')?);
    let link = tail.strip_prefix("\",\"link\":\"")?.strip_suffix("\"}")?;
    let well_formed = id.len() == 22 && id.bytes().all(|b| ALPHABET.contains(&b));
    (well_formed && link.strip_suffix(id)?.ends_with("/v1/ws/")).then_some(id)
}

/// The `message` field of a relay envelope
/// `{"message":"<text>","sender":{…}}`, if the frame is one whose text needs
/// no JSON unescaping (the bench's never does). `sender` is not inspected.
pub(super) fn envelope_message(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"message\":\"")?;
    let (message, tail) = rest.split_at(rest.find('"')?);
    // An escaped quote stops the search early and leaves a backslash behind.
    if message.contains('\\') {
        return None;
    }
    (tail.starts_with("\",\"sender\":{") && tail.ends_with("}}")).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "xdp7DlFoK9h6sMtcJJWTqg";

    #[test]
    fn hello_frames() {
        let hello = format!(r#"{{"channelid":"{ID}","link":"/v1/ws/{ID}"}}"#);
        assert_eq!(hello_channel(&hello), Some(ID));
        let prefixed = format!(r#"{{"channelid":"{ID}","link":"/pair/v1/ws/{ID}"}}"#);
        assert_eq!(hello_channel(&prefixed), Some(ID));
        let bad = [
            format!(r#"{{"channelid":"{ID}","link":"/v1/ws/other"}}"#),
            format!(r#"{{"channelid":"{ID}x","link":"/v1/ws/{ID}x"}}"#),
            r#"{"channelid":"xdp7DlFoK9h6sMtcJJWT!g","link":"/v1/ws/xdp7DlFoK9h6sMtcJJWT!g"}"#
                .to_owned(),
            format!(r#"{{"link":"/v1/ws/{ID}","channelid":"{ID}"}}"#),
            format!(r#"{{"channelid":"{ID}","link":"/v1/ws/{ID}"}} "#),
            format!(r#"{{"channelid":"{ID}"}}"#),
            r#"{"message":"x","sender":{}}"#.to_owned(),
            String::new(),
        ];
        for frame in &bad {
            assert_eq!(hello_channel(frame), None, "{frame}");
        }
    }

    #[test]
    fn envelope_frames() {
        let cases = [
            (
                r#"{"message":"aGVsbG8","sender":{"remote":"127.0.0.1","ua":"x"}}"#,
                Some("aGVsbG8"),
            ),
            (r#"{"message":"","sender":{}}"#, Some("")),
            (r#"{"message":"a\"b","sender":{}}"#, None),
            (r#"{"message":"a\\b","sender":{}}"#, None),
            (r#"{"message":"abc"}"#, None),
            (r#"{"message":"abc","sender":{}"#, None),
            (r#"{"sender":{},"message":"abc"}"#, None),
            (r#"{"message":"abc","sender":"x"}"#, None),
            ("", None),
        ];
        for (frame, want) in cases {
            assert_eq!(envelope_message(frame), want, "{frame}");
        }
    }

    #[test]
    fn message_texts_are_base64url_and_check_out() {
        let stamp = Stamp {
            stream: 3,
            seq: 7,
            sent_ns: 123_456_789,
        };
        let text = message_text(stamp, 4, 200);
        assert_eq!(text.len(), 200);
        assert!(
            text.bytes()
                .all(|b| ALPHABET.contains(&b) || b.is_ascii_hexdigit())
        );
        assert_eq!(check_text(&text, 4, 200), Text::Intact(stamp));
        // What the server relays: the text inside an envelope, unchanged.
        let frame = format!(r#"{{"message":"{text}","sender":{{"remote":"127.0.0.1"}}}}"#);
        let relayed = envelope_message(&frame).expect("an envelope");
        assert_eq!(check_text(relayed, 4, 200), Text::Intact(stamp));
        // Another round's, a truncated, a changed text.
        assert_eq!(check_text(&text, 5, 200), Text::Damaged(stamp));
        assert_eq!(check_text(&text[..199], 4, 200), Text::Damaged(stamp));
        let mut changed = text.clone().into_bytes();
        changed[150] = if changed[150] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).expect("ASCII");
        assert_eq!(check_text(&changed, 4, 200), Text::Damaged(stamp));
        assert_eq!(check_text("not a bench message", 4, 200), Text::Foreign);
        // The smallest message is the stamp alone.
        let small = message_text(stamp, 0, 24);
        assert_eq!(check_text(&small, 0, 24), Text::Intact(stamp));
        // Consecutive messages differ in their filler too.
        let next = message_text(Stamp { seq: 8, ..stamp }, 4, 200);
        assert_ne!(text[HEADER_LEN..], next[HEADER_LEN..]);
    }
}
