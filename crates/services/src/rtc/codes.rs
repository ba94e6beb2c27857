//! Every way the rtc service ends a connection or refuses a request, in one
//! place: the WebSocket close codes (as [`Disconnect`] values) and the metric
//! labels of rejected input.
//!
//! The 4000 codes are the original's: it answers every handshake with 101 and
//! then closes with 4000 and a reason word. The other codes are ours, for ends
//! the original did not have (it dropped the TCP connection instead).

use std::borrow::Cow;

use metrics::counter;
use switchboard_core::Disconnect;

/// The close code of both refusals the original sends after the 101.
pub const CLOSE_REFUSED: u16 = 4000;

/// The cookie names no registered user (missing, unknown, garbled or forged).
pub const UNAUTHENTICATED: Disconnect = Disconnect::Service {
    code: CLOSE_REFUSED,
    reason: Cow::Borrowed("UNAUTHENTICATED"),
    label: "unauthenticated",
};

/// The user already has a live connection; the first one wins.
pub const ALREADY_EXISTS: Disconnect = Disconnect::Service {
    code: CLOSE_REFUSED,
    reason: Cow::Borrowed("ALREADY_EXISTS"),
    label: "already_exists",
};

/// An administrator called the kick endpoint (ours: the original closed nothing).
pub const KICKED: Disconnect = Disconnect::Service {
    code: 4001,
    reason: Cow::Borrowed("KICKED"),
    label: "kicked",
};

/// The name store could not be asked whether the user exists. Try again later.
pub const STORE_UNAVAILABLE: Disconnect = Disconnect::Service {
    code: 1013,
    reason: Cow::Borrowed("store unavailable, try again later"),
    label: "store_unavailable",
};

/// The cluster bus could not confirm the connection's subscriptions (NATS
/// unreachable). Try again later.
pub const BUS_UNAVAILABLE: Disconnect = Disconnect::Service {
    code: 1013,
    reason: Cow::Borrowed("cluster bus unavailable, try again later"),
    label: "bus_unavailable",
};

/// A message that is not a JSON object of the expected shape: close 1007 with
/// the parser's complaint as the reason (the original dropped the TCP
/// connection and left the user registered).
pub fn bad_json(detail: &str) -> Disconnect {
    Disconnect::service(1007, format!("invalid JSON message: {detail}"), "bad_json")
}

/// Labels of `switchboard_rtc_rejected_total{reason=…}`: input the service
/// refused or could not serve. Everyone else is unaffected by each of them.
pub mod reason {
    /// A WebSocket message that is not valid JSON of the message shape (close 1007).
    pub const BAD_JSON: &str = "bad_json";
    /// A message without a target (answered `TARGET_NOT_FOUND`).
    pub const MISSING_TARGET: &str = "missing_target";
    /// A message for a user who is not online (answered `TARGET_NOT_FOUND`).
    pub const TARGET_NOT_FOUND: &str = "target_not_found";
    /// The cluster bus failed: a connection refused (1013) or a message
    /// answered `TARGET_NOT_FOUND` because no node could be asked.
    pub const BUS: &str = "bus";
    /// A WebSocket message over the size limit (close 1009).
    pub const TOO_BIG: &str = "too_big";
    /// No `user_username` cookie (close 4000 `UNAUTHENTICATED` / 401).
    pub const NO_COOKIE: &str = "no_cookie";
    /// A cookie whose signature is missing or wrong, in signed mode (4000 / 401).
    pub const FORGED_COOKIE: &str = "forged_cookie";
    /// A cookie that is not a valid name at all (4000 / 401).
    pub const GARBLED_COOKIE: &str = "garbled_cookie";
    /// A well-formed cookie naming no registered user (4000 / 401).
    pub const UNKNOWN_USER: &str = "unknown_user";
    /// A second connection for a user who is online (4000 `ALREADY_EXISTS`).
    pub const ALREADY_EXISTS: &str = "already_exists";
    /// Too many registrations from one client address (429).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A registration body that could not be parsed (400).
    pub const INVALID_BODY: &str = "invalid_body";
    /// A registration body over the size limit (413).
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// An empty name (400).
    pub const EMPTY_NAME: &str = "empty_name";
    /// A name that cannot be a cookie value, or is too long (400).
    pub const INVALID_NAME: &str = "invalid_name";
    /// The kick endpoint called from elsewhere than loopback without the token (403).
    pub const KICK_FORBIDDEN: &str = "kick_forbidden";
    /// A WebSocket upgrade from a browser origin that is not allowed (403).
    pub const ORIGIN: &str = "origin";
    /// The name store failed (503, or close 1013).
    pub const STORE: &str = "store_unavailable";
}

/// Counts one rejection under `reason` (one of [`reason`]).
pub fn reject(reason: &'static str) {
    counter!("switchboard_rtc_rejected_total", "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_originals_code_and_words() {
        assert_eq!(UNAUTHENTICATED.code(), 4000);
        assert_eq!(UNAUTHENTICATED.reason(), "UNAUTHENTICATED");
        assert_eq!(ALREADY_EXISTS.code(), 4000);
        assert_eq!(ALREADY_EXISTS.reason(), "ALREADY_EXISTS");
        assert_eq!(KICKED.code(), 4001);
        assert_eq!(bad_json("x").code(), 1007);
        assert_eq!(bad_json("x").label(), "bad_json");
    }
}
