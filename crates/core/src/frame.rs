//! [`Frame`]: one outbound message, encoded once and shared by all its recipients.
//!
//! A message from a channel with history is a [`Frame::Logged`]: it carries its
//! position in the channel's log (offset and epoch) and two renderings, the
//! plain text every client gets and an envelope (offset, epoch, data) for
//! clients that asked for positions. Each rendering is built at most once per
//! message however many subscribers take it (invariant 2); the subscriber's
//! [`OutboxView`](crate::OutboxView) picks one when the frame is queued.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// An outbound WebSocket data message.
///
/// The payload is a reference-counted [`Bytes`], so cloning a frame for each of a
/// thousand subscribers copies a pointer, never the message (invariant 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message. The payload is valid UTF-8; whoever builds one guarantees it.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A text message with its position in a channel log (see the module docs).
    Logged(Arc<LoggedFrame>),
}

/// Builds the envelope rendering of a logged message from its offset, epoch and text.
pub type RenderEnvelope = fn(offset: u64, epoch: &str, text: &[u8]) -> Bytes;

/// A message with its position in a channel's log.
pub struct LoggedFrame {
    offset: u64,
    epoch: Arc<str>,
    text: Bytes,
    render: RenderEnvelope,
    envelope: OnceLock<Bytes>,
}

impl std::fmt::Debug for LoggedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedFrame")
            .field("offset", &self.offset)
            .field("epoch", &self.epoch)
            .field("len", &self.text.len())
            .finish()
    }
}

impl PartialEq for LoggedFrame {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset && self.epoch == other.epoch && self.text == other.text
    }
}

impl Eq for LoggedFrame {}

impl LoggedFrame {
    /// The message's offset in its channel log (increasing; not necessarily contiguous).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The identity of the log the offset belongs to.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The plain text, as a client without positions receives it.
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// The envelope rendering, built on first use and shared afterwards.
    pub fn envelope(&self) -> &Bytes {
        self.envelope
            .get_or_init(|| (self.render)(self.offset, &self.epoch, &self.text))
    }
}

impl Frame {
    /// Builds a text frame from a `String`, which is UTF-8 by construction.
    pub fn text(s: impl Into<String>) -> Self {
        Frame::Text(Bytes::from(s.into()))
    }

    /// Builds a text frame from bytes already known to be valid UTF-8.
    ///
    /// Returns `None` when they are not.
    pub fn text_checked(b: Bytes) -> Option<Self> {
        std::str::from_utf8(&b).ok()?;
        Some(Frame::Text(b))
    }

    /// A logged text message (the text must be valid UTF-8, as for [`Frame::Text`]).
    pub fn logged(offset: u64, epoch: Arc<str>, text: Bytes, render: RenderEnvelope) -> Self {
        Frame::Logged(Arc::new(LoggedFrame {
            offset,
            epoch,
            text,
            render,
            envelope: OnceLock::new(),
        }))
    }

    /// The payload bytes (the plain text of a logged frame).
    pub fn payload(&self) -> &Bytes {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
            Frame::Logged(l) => &l.text,
        }
    }

    /// The log offset of a logged frame.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Frame::Logged(l) => Some(l.offset),
            _ => None,
        }
    }

    /// Payload length in bytes, the unit the outbox byte bound counts.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(offset: u64, epoch: &str, text: &[u8]) -> Bytes {
        Bytes::from(format!(
            "{offset}@{epoch}:{}",
            std::str::from_utf8(text).unwrap()
        ))
    }

    #[test]
    fn a_logged_frame_renders_its_envelope_once_and_shares_it() {
        let f = Frame::logged(7, Arc::from("e1"), Bytes::from_static(b"hi"), render);
        let g = f.clone();
        let (Frame::Logged(a), Frame::Logged(b)) = (&f, &g) else {
            unreachable!()
        };
        assert_eq!(a.envelope(), "7@e1:hi");
        assert_eq!(a.envelope().as_ptr(), b.envelope().as_ptr(), "built once");
        assert_eq!(f.payload(), "hi");
        assert_eq!(f.offset(), Some(7));
        assert_eq!(Frame::text("x").offset(), None);
    }
}
