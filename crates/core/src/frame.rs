//! [`Frame`]: one outbound message, encoded once and shared by all its recipients.

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

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
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
