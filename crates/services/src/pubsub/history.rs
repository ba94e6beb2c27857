//! What a subscriber may ask of a channel with history, on the query string of
//! its WebSocket request, and the control messages that answer it.
//!
//! Parameters (see `docs/pubsub-history.md` for the wire format):
//! - `last=N`: replay up to `N` retained messages, oldest first, before the live ones;
//! - `envelope=1`: receive each message as `{"offset":…,"epoch":…,"data":…}`,
//!   after a first control message saying where the client starts;
//! - `since=OFFSET&epoch=EPOCH`: recover what followed `OFFSET` (implies
//!   `envelope=1`), or be told by a `gap` control message that it cannot.
//!
//! They are read only when some `[[pubsub.history]]` is configured: otherwise the
//! query string is ignored, as Pinghub ignores it.

use bytes::Bytes;
use switchboard_core::Frame;
use switchboard_core::bus::HistoryQuery;
use switchboard_core::outbox::OutboxView;

/// The most messages one subscriber may ask to replay (`last`), and the most a
/// channel may keep (`max_messages`).
pub const MAX_LAST: usize = 10_000;

/// The longest epoch accepted in a query.
const MAX_EPOCH: usize = 64;

/// Where a subscriber's stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Live messages only.
    Live,
    /// Up to this many retained messages first.
    Last(usize),
    /// Everything after `offset` of the log `epoch`.
    Since {
        /// The log the client's offset belongs to.
        epoch: String,
        /// The last offset the client has.
        offset: u64,
    },
}

/// What a subscriber asked for on its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// How logged messages are rendered for it.
    pub view: OutboxView,
    /// Where its stream starts.
    pub start: Start,
}

impl Request {
    /// A subscriber that asked for nothing: plain and live, as in Pinghub.
    pub const PLAIN: Request = Request {
        view: OutboxView::Plain,
        start: Start::Live,
    };

    /// Whether it asked for anything beyond plain live messages.
    pub fn wants_history(&self) -> bool {
        *self != Request::PLAIN
    }

    /// The history to read for it, when it needs any read.
    pub fn query(&self) -> Option<HistoryQuery> {
        match (&self.start, self.view) {
            (Start::Last(n), _) => Some(HistoryQuery::Last(*n)),
            (Start::Since { epoch, offset }, _) => Some(HistoryQuery::After {
                epoch: epoch.clone(),
                offset: *offset,
            }),
            // An envelope client needs the epoch and the top to start from.
            (Start::Live, OutboxView::Envelope) => Some(HistoryQuery::Last(0)),
            (Start::Live, OutboxView::Plain) => None,
        }
    }
}

/// Why a query string was refused (HTTP 400 before the upgrade).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `last` is not a whole number from 0 to [`MAX_LAST`].
    #[error("Error: bad request. last must be a whole number from 0 to {MAX_LAST}.\n")]
    Last,
    /// `envelope` is not 1, 0, true or false.
    #[error("Error: bad request. envelope must be 1 or 0.\n")]
    Envelope,
    /// `since` is not a whole number.
    #[error("Error: bad request. since must be a whole number (an offset from an envelope).\n")]
    Since,
    /// `epoch` is empty, too long, or has characters no epoch has.
    #[error(
        "Error: bad request. epoch must be 1-64 characters of letters, digits, '.', '_' or '-' (the epoch from an envelope).\n"
    )]
    Epoch,
    /// `since` without `epoch`, or `epoch` without `since`.
    #[error("Error: bad request. since and epoch go together.\n")]
    SinceWithoutEpoch,
    /// `since` with `last`, or with `envelope=0`.
    #[error(
        "Error: bad request. since cannot be combined with last or envelope=0 (it replays what was missed, as envelopes).\n"
    )]
    Conflict,
    /// A parameter given twice.
    #[error("Error: bad request. A history parameter is given twice.\n")]
    Repeated,
    /// History asked of a channel that keeps none.
    #[error("Error: bad request. This channel keeps no history (see [[pubsub.history]]).\n")]
    NotKept,
}

impl QueryError {
    /// The `reason` label of `switchboard_http_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            QueryError::NotKept => "no_history",
            _ => "history_query",
        }
    }
}

/// Reads the history parameters of a raw query string (other parameters are
/// ignored). `keeps_history` says whether the channel keeps any.
pub fn parse(query: Option<&str>, keeps_history: bool) -> Result<Request, QueryError> {
    let mut last = None;
    let mut envelope = None;
    let mut since = None;
    let mut epoch = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "last" => &mut last,
            "envelope" => &mut envelope,
            "since" => &mut since,
            "epoch" => &mut epoch,
            _ => continue,
        };
        if slot.is_some() {
            return Err(QueryError::Repeated);
        }
        let value: String = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        *slot = Some(value);
    }
    if last.is_none() && envelope.is_none() && since.is_none() && epoch.is_none() {
        return Ok(Request::PLAIN);
    }
    let last = last
        .map(|v| number(&v).ok_or(QueryError::Last))
        .transpose()?;
    if last.is_some_and(|n| n > MAX_LAST as u64) {
        return Err(QueryError::Last);
    }
    let envelope = match envelope.as_deref() {
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(_) => return Err(QueryError::Envelope),
    };
    let since = since
        .map(|v| number(&v).ok_or(QueryError::Since))
        .transpose()?;
    if let Some(e) = &epoch
        && !valid_epoch(e)
    {
        return Err(QueryError::Epoch);
    }
    let start = match (since, epoch, last) {
        (Some(_), None, _) | (None, Some(_), _) => return Err(QueryError::SinceWithoutEpoch),
        (Some(_), Some(_), Some(_)) => return Err(QueryError::Conflict),
        (Some(offset), Some(epoch), None) => {
            if envelope == Some(false) {
                return Err(QueryError::Conflict);
            }
            Start::Since { epoch, offset }
        }
        (None, None, Some(n)) => Start::Last(n as usize),
        (None, None, None) => Start::Live,
    };
    let view = if envelope == Some(true) || matches!(start, Start::Since { .. }) {
        OutboxView::Envelope
    } else {
        OutboxView::Plain
    };
    if !keeps_history {
        return Err(QueryError::NotKept);
    }
    Ok(Request { view, start })
}

/// A whole number written in ASCII digits only (no sign, no spaces).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn valid_epoch(e: &str) -> bool {
    (1..=MAX_EPOCH).contains(&e.len())
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The first message of an envelope client whose request the history could
/// answer: where it starts (`offset`: the newest offset in the channel's log
/// when it was read) and how many retained messages follow before the live ones.
pub fn position(epoch: &str, offset: u64, replay: usize) -> Frame {
    Frame::Text(Bytes::from(format!(
        r#"{{"control":"position","epoch":{},"offset":{offset},"replay":{replay}}}"#,
        quote(epoch)
    )))
}

/// Why a `since` could not be answered, as the `reason` of a `gap` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The log is not the one the client's offset belongs to.
    EpochChanged,
    /// Messages after the client's offset are no longer kept.
    Expired,
}

impl Gap {
    /// The wire name (and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Gap::EpochChanged => "epoch_changed",
            Gap::Expired => "expired",
        }
    }
}

/// The first message of an envelope client whose `since` cannot be answered:
/// it has missed messages it will not get, and continues live from `offset`.
pub fn gap(reason: Gap, epoch: &str, offset: u64) -> Frame {
    Frame::Text(Bytes::from(format!(
        r#"{{"control":"gap","reason":"{}","epoch":{},"offset":{offset}}}"#,
        reason.as_str(),
        quote(epoch)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(epoch: &str, offset: u64) -> Start {
        Start::Since {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn queries_parse_or_name_what_is_wrong() {
        let env = OutboxView::Envelope;
        let plain = OutboxView::Plain;
        let ok = |view, start| Ok(Request { view, start });
        let cases: &[(Option<&str>, Result<Request, QueryError>)] = &[
            (None, Ok(Request::PLAIN)),
            (Some(""), Ok(Request::PLAIN)),
            (Some("x=1&y"), Ok(Request::PLAIN)),
            (Some("last=5"), ok(plain, Start::Last(5))),
            (Some("last=0"), ok(plain, Start::Last(0))),
            (Some("last=10000"), ok(plain, Start::Last(10_000))),
            (Some("last=5&envelope=1"), ok(env, Start::Last(5))),
            (Some("envelope=true&x=2"), ok(env, Start::Live)),
            (Some("envelope=0"), ok(plain, Start::Live)),
            (Some("since=7&epoch=j17a"), ok(env, since("j17a", 7))),
            (
                Some("epoch=m00ff&since=0&envelope=1"),
                ok(env, since("m00ff", 0)),
            ),
            (Some("last=abc"), Err(QueryError::Last)),
            (Some("last=-1"), Err(QueryError::Last)),
            (Some("last=+1"), Err(QueryError::Last)),
            (Some("last="), Err(QueryError::Last)),
            (Some("last"), Err(QueryError::Last)),
            (Some("last=10001"), Err(QueryError::Last)),
            (Some("last=99999999999999999999999"), Err(QueryError::Last)),
            (Some("last=1&last=2"), Err(QueryError::Repeated)),
            (Some("envelope=yes"), Err(QueryError::Envelope)),
            (Some("since=5"), Err(QueryError::SinceWithoutEpoch)),
            (Some("epoch=m1"), Err(QueryError::SinceWithoutEpoch)),
            (Some("since=x&epoch=m1"), Err(QueryError::Since)),
            (Some("since=-3&epoch=m1"), Err(QueryError::Since)),
            (Some("since=3&epoch="), Err(QueryError::Epoch)),
            (Some("since=3&epoch=a%20b"), Err(QueryError::Epoch)),
            (Some("since=3&epoch=<x>"), Err(QueryError::Epoch)),
            (Some("since=3&epoch=m1&last=2"), Err(QueryError::Conflict)),
            (
                Some("since=3&epoch=m1&envelope=0"),
                Err(QueryError::Conflict),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(&parse(*q, true), want, "{q:?}");
        }
        let long = format!("since=1&epoch={}", "e".repeat(65));
        assert_eq!(parse(Some(&long), true), Err(QueryError::Epoch));
    }

    #[test]
    fn a_channel_without_history_refuses_history_but_not_other_queries() {
        assert_eq!(parse(Some("x=1"), false), Ok(Request::PLAIN));
        assert_eq!(parse(Some("last=3"), false), Err(QueryError::NotKept));
        assert_eq!(parse(Some("envelope=1"), false), Err(QueryError::NotKept));
        // Malformed input is named as such first.
        assert_eq!(parse(Some("last=x"), false), Err(QueryError::Last));
    }

    #[test]
    fn control_messages_are_json_with_the_documented_fields() {
        let p: serde_json::Value =
            serde_json::from_slice(position("j1\"x", 42, 3).payload()).unwrap();
        assert_eq!(
            p,
            serde_json::json!({"control":"position","epoch":"j1\"x","offset":42,"replay":3})
        );
        let g: serde_json::Value =
            serde_json::from_slice(gap(Gap::Expired, "m1", 9).payload()).unwrap();
        assert_eq!(
            g,
            serde_json::json!({"control":"gap","reason":"expired","epoch":"m1","offset":9})
        );
    }
}
