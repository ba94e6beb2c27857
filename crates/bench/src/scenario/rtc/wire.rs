//! The messages of an `rtc` negotiation: building a stamped offer, answer or
//! candidate of a given payload size, and classifying what arrives (scanned,
//! not parsed).

use tokio_websockets::Message;

use crate::payload::{self, HEADER_LEN, Stamp};

/// The message kinds of a negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Offer,
    Answer,
    Candidate,
}

impl Kind {
    pub(super) fn wire(self) -> &'static str {
        match self {
            Kind::Offer => "video-offer",
            Kind::Answer => "video-answer",
            Kind::Candidate => "ice-candidate",
        }
    }
}

/// `{"target":…,"type":…,"payload":{"t":"<stamp>","d":"<padding>"}}` with a
/// payload of `size` bytes.
pub(super) fn message(target: &str, kind: Kind, size: usize, stamp: Stamp) -> Message {
    // `{"t":"` + stamp + `","d":"` + padding + `"}`
    const OVERHEAD: usize = 6 + HEADER_LEN + 7 + 2;
    let mut stamp_text = [0u8; HEADER_LEN];
    // The buffer is exactly HEADER_LEN: encoding cannot fail.
    let _ = payload::encode_into(&mut stamp_text, stamp);
    let pad = size.saturating_sub(OVERHEAD);
    let mut s = String::with_capacity(size + target.len() + 48);
    s.push_str("{\"target\":\"");
    s.push_str(target);
    s.push_str("\",\"type\":\"");
    s.push_str(kind.wire());
    s.push_str("\",\"payload\":{\"t\":\"");
    s.push_str(std::str::from_utf8(&stamp_text).unwrap_or("000000000000000000000000"));
    s.push_str("\",\"d\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}}");
    Message::text(s)
}

/// What an arriving frame is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    Relayed(Kind, Stamp),
    NotFound,
    Other,
}

pub(super) fn classify(text: &str) -> Arrival {
    if text.contains("\"type\":\"TARGET_NOT_FOUND\"") {
        return Arrival::NotFound;
    }
    let kind = if text.contains("\"type\":\"video-offer\"") {
        Kind::Offer
    } else if text.contains("\"type\":\"video-answer\"") {
        Kind::Answer
    } else if text.contains("\"type\":\"ice-candidate\"") {
        Kind::Candidate
    } else {
        return Arrival::Other;
    };
    const MARK: &str = "\"payload\":{\"t\":\"";
    let Some(at) = text.find(MARK) else {
        return Arrival::Other;
    };
    match text.as_bytes().get(at + MARK.len()..).map(payload::decode) {
        Some(Ok(stamp)) => Arrival::Relayed(kind, stamp),
        _ => Arrival::Other,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_requested_payload_size_and_round_trip() {
        let stamp = Stamp {
            stream: 7,
            seq: 42,
            sent_ns: 123_456,
        };
        let m = message("bob", Kind::Offer, 4000, stamp);
        let text = m.as_text().expect("text");
        let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(v["target"], "bob");
        assert_eq!(v["type"], "video-offer");
        assert_eq!(
            serde_json::to_string(&v["payload"]).expect("payload").len(),
            4000
        );
        // What the server forwards: the same payload after the envelope.
        let payload = &text[text.find("\"payload\":").expect("payload key") + 10..text.len() - 1];
        let forwarded = format!(
            "{{\"originator\":\"alice\",\"target\":\"bob\",\"type\":\"video-offer\",\"payload\":{payload}}}\n"
        );
        assert_eq!(classify(&forwarded), Arrival::Relayed(Kind::Offer, stamp));
        assert_eq!(
            classify("{\"target\":\"\",\"type\":\"TARGET_NOT_FOUND\",\"payload\":null}\n"),
            Arrival::NotFound
        );
        assert_eq!(classify("{}"), Arrival::Other);
    }
}
