//! Every way the pairing service ends a connection, as [`Disconnect`] values.
//!
//! The original channelserver never sent a Close frame (clients always saw 1006);
//! Switchboard sends one of these codes and reasons before closing the TCP
//! connection. Refusals happen *after* the 101 (the original's clients only know
//! "the socket closed"), so each refusal has its own application code in the
//! 4000–4999 range. The generic ends come from the edge: a client timeout is
//! [`Disconnect::Timeout`] (1008), a frame over the size cap is
//! [`Disconnect::TooBig`] (1009), a server shutdown is [`Disconnect::Shutdown`] (1001).
//!
//! | code | reason | label | when |
//! |------|--------|-------|------|
//! | 4400 | `invalid X-Forwarded-For` | `bad_forwarded_for` | a trusted proxy sent an unparsable `X-Forwarded-For` |
//! | 4403 | `address not in channel` | `foreign_address` | a joiner after the second connection comes from an address no member has |
//! | 4404 | `unknown channel` | `unknown_channel` | the channel does not exist (never did, or ended) |
//! | 4404 | `unknown channel: malformed channel id` | `malformed_channel` | the id in the path is not a channel id (the original upgraded it and closed too) |
//! | 1013 | `channel state unavailable, try again` | `book_unavailable` | the channel book (NATS KV on a cluster) could not be reached |
//! | 4408 | `channel lifespan expired` | `lifespan` | `conn_lifespan` seconds since the channel was created |
//! | 4409 | `channel full` | `channel_full` | the channel already has `max_channel_connections` members |
//! | 4413 | `channel data limit reached` | `max_data` | `max_data` envelope bytes exchanged; ends the whole channel |
//! | 4429 | `channel message limit reached` | `max_exchanges` | message number `max_exchanges + 1`; ends the whole channel |

use std::borrow::Cow;

use switchboard_core::Disconnect;

const fn service(code: u16, reason: &'static str, label: &'static str) -> Disconnect {
    Disconnect::Service {
        code,
        reason: Cow::Borrowed(reason),
        label,
    }
}

/// A trusted proxy's `X-Forwarded-For` could not be parsed (close 4400).
pub const BAD_FORWARDED_FOR: Disconnect =
    service(4400, "invalid X-Forwarded-For", "bad_forwarded_for");
/// A joiner's address matches no member's after the second connection (close 4403).
pub const FOREIGN_ADDRESS: Disconnect = service(4403, "address not in channel", "foreign_address");
/// The channel does not exist (close 4404).
pub const UNKNOWN_CHANNEL: Disconnect = service(4404, "unknown channel", "unknown_channel");
/// The id in the path is not a channel id: an unknown channel too, saying why (close 4404).
pub const MALFORMED_CHANNEL: Disconnect = service(
    4404,
    "unknown channel: malformed channel id",
    "malformed_channel",
);
/// The channel book could not be reached (close 1013, try again later).
pub const BOOK_UNAVAILABLE: Disconnect = service(
    1013,
    "channel state unavailable, try again",
    "book_unavailable",
);
/// The channel outlived `conn_lifespan` (close 4408, every member).
pub const LIFESPAN: Disconnect = service(4408, "channel lifespan expired", "lifespan");
/// The channel has `max_channel_connections` members already (close 4409).
pub const CHANNEL_FULL: Disconnect = service(4409, "channel full", "channel_full");
/// The channel exchanged more than `max_data` bytes (close 4413, every member).
pub const MAX_DATA: Disconnect = service(4413, "channel data limit reached", "max_data");
/// The channel exchanged more than `max_exchanges` messages (close 4429, every member).
pub const MAX_EXCHANGES: Disconnect =
    service(4429, "channel message limit reached", "max_exchanges");

/// Every pairing-specific disconnect, for tests and documentation.
pub const ALL: [Disconnect; 7] = [
    BAD_FORWARDED_FOR,
    FOREIGN_ADDRESS,
    UNKNOWN_CHANNEL,
    LIFESPAN,
    CHANNEL_FULL,
    MAX_DATA,
    MAX_EXCHANGES,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_labels_are_distinct_app_codes_with_short_reasons() {
        let mut codes = HashSet::new();
        let mut labels = HashSet::new();
        let generic = [
            Disconnect::Timeout,
            Disconnect::TooBig,
            Disconnect::Shutdown,
            Disconnect::PeerClosed,
        ];
        for d in &ALL {
            assert!((4000..5000).contains(&d.code()), "{d}");
            assert!(!d.reason().is_empty() && d.reason().len() <= 123, "{d}");
            assert!(codes.insert(d.code()), "duplicate code {d}");
            assert!(labels.insert(d.label()), "duplicate label {d}");
            assert!(generic.iter().all(|g| g.code() != d.code()));
        }
    }
}
