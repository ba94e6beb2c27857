//! [`Disconnect`]: why a connection ends, as a value.
//!
//! Every end of a connection that the server decides is one of these. The socket
//! writer turns it into a Close frame with [`Disconnect::code`] and
//! [`Disconnect::reason`], and the edge counts it under [`Disconnect::label`].
//! This is the one mapping from error to close code.

use std::borrow::Cow;

/// RFC 6455 close codes used by the server.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer violated the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint does not accept (for example binary frames).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Payload inconsistent with its type, such as invalid UTF-8 in a text frame.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated (limits, authorization).
    pub const POLICY: u16 = 1008;
    /// A message was larger than allowed.
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL: u16 = 1011;
    /// Try again later: the server is overloaded (used for slow consumers).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Why the server ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The peer closed; nothing more to say.
    PeerClosed,
    /// The server is shutting down.
    Shutdown,
    /// The client does not read fast enough: its outbox overflowed, or a
    /// write to its socket stalled past the write timeout. One policy for
    /// both: close 1013 when the socket still takes it, counted as a slow consumer.
    SlowConsumer,
    /// No pong (or no traffic, depending on the service) within the timeout.
    Timeout,
    /// A text frame carried invalid UTF-8.
    InvalidUtf8,
    /// A binary frame arrived where only text is accepted.
    BinaryUnsupported,
    /// A message exceeded the size limit.
    TooBig,
    /// The peer broke the WebSocket protocol.
    Protocol,
    /// A service-specific end with its own code, reason and metric label.
    Service {
        /// The close code (1000-4999, not a reserved one).
        code: u16,
        /// A short human-readable reason (at most 123 bytes on the wire).
        reason: Cow<'static, str>,
        /// The metric label, a fixed snake_case word.
        label: &'static str,
    },
}

impl Disconnect {
    /// A service-specific disconnect.
    pub fn service(code: u16, reason: impl Into<Cow<'static, str>>, label: &'static str) -> Self {
        Disconnect::Service {
            code,
            reason: reason.into(),
            label,
        }
    }

    /// The close code sent to the peer.
    pub fn code(&self) -> u16 {
        match self {
            Disconnect::PeerClosed => code::NORMAL,
            Disconnect::Shutdown => code::GOING_AWAY,
            Disconnect::SlowConsumer => code::TRY_AGAIN_LATER,
            Disconnect::Timeout => code::POLICY,
            Disconnect::InvalidUtf8 => code::INVALID_PAYLOAD,
            Disconnect::BinaryUnsupported => code::UNSUPPORTED_DATA,
            Disconnect::TooBig => code::TOO_BIG,
            Disconnect::Protocol => code::PROTOCOL_ERROR,
            Disconnect::Service { code, .. } => *code,
        }
    }

    /// The close reason sent to the peer.
    pub fn reason(&self) -> &str {
        match self {
            Disconnect::PeerClosed => "",
            Disconnect::Shutdown => "server shutting down",
            Disconnect::SlowConsumer => "slow consumer",
            Disconnect::Timeout => "keepalive timeout",
            Disconnect::InvalidUtf8 => "text frame is not valid UTF-8",
            Disconnect::BinaryUnsupported => "binary frames are not supported",
            Disconnect::TooBig => "message too big",
            Disconnect::Protocol => "protocol error",
            Disconnect::Service { reason, .. } => reason,
        }
    }

    /// The metric label this disconnect is counted under.
    pub fn label(&self) -> &'static str {
        match self {
            Disconnect::PeerClosed => "peer_closed",
            Disconnect::Shutdown => "shutdown",
            Disconnect::SlowConsumer => "slow_consumer",
            Disconnect::Timeout => "timeout",
            Disconnect::InvalidUtf8 => "invalid_utf8",
            Disconnect::BinaryUnsupported => "binary_unsupported",
            Disconnect::TooBig => "too_big",
            Disconnect::Protocol => "protocol_error",
            Disconnect::Service { label, .. } => label,
        }
    }
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_sendable_code_and_short_reason() {
        let all = [
            Disconnect::PeerClosed,
            Disconnect::Shutdown,
            Disconnect::SlowConsumer,
            Disconnect::Timeout,
            Disconnect::InvalidUtf8,
            Disconnect::BinaryUnsupported,
            Disconnect::TooBig,
            Disconnect::Protocol,
            Disconnect::service(4000, "UNAUTHENTICATED", "unauthenticated"),
        ];
        for d in all {
            let c = d.code();
            assert!((1000..5000).contains(&c), "{d}");
            assert!(
                ![1004, 1005, 1006, 1015].contains(&c),
                "{d} uses a reserved code"
            );
            assert!(d.reason().len() <= 123, "{d}");
            assert!(!d.label().is_empty());
        }
    }
}
