//! The JetStream streams that sequence ordered topics, and history read back
//! from them.
//!
//! One stream per class of ordered topic, all republishing (after storing) to
//! the topic subjects `P.t.…`, from one server-side publisher, in stream order:
//! - `<N>_ordered` (class `o`): ordered topics without history; memory storage,
//!   one message kept per subject (it is a sequencer, not a store);
//! - `<N>_hist_<hash>` (class `h<hash>`, the hash of the retention prefix, so
//!   every node names it alike): one per `Retention`, file storage, with its
//!   `max_messages` per subject and `max_age`.
//!
//! A history offset is the stream sequence (increasing along a topic, not
//! contiguous: the stream interleaves topics). The epoch names the stream's
//! creation, so a stream that was lost and made again is a new epoch. A
//! subscriber that has offset `o` can recover exactly when the message `o` of
//! its topic is still stored (then everything after it is); offset 0 means
//! "from the start of the epoch", complete only while the stream has dropped
//! nothing. Otherwise the answer is `Expired`: conservative, never a silent gap.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use switchboard_core::Frame;
use switchboard_core::bus::{Delivery, History, HistoryError, HistoryQuery, Retention, Topics};

use super::conn::NatsConn;
use super::envelope;

/// The class token of ordered topics without history.
pub(crate) const ORDERED: &str = "o";

/// The class token of a retention (stable across nodes: a hash of its prefix).
pub(crate) fn class_of(r: &Retention) -> String {
    // FNV-1a: small, stable, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in r.prefix.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("h{:08x}", h as u32)
}

fn stream_name(conn: &NatsConn, class: &str) -> String {
    if class == ORDERED {
        conn.subjects().name("ordered")
    } else {
        conn.subjects().name(&format!("hist_{class}"))
    }
}

/// Creates or updates every sequencing stream. Run after each (re)connect.
pub(crate) async fn declare_streams(conn: &NatsConn, topics: &Topics) -> Result<(), String> {
    let client = conn
        .client_within(conn.options().request_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    let s = conn.subjects();
    let mut configs = vec![stream::Config {
        name: stream_name(conn, ORDERED),
        subjects: vec![s.sequenced_all(ORDERED)],
        storage: stream::StorageType::Memory,
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::Old,
        republish: Some(stream::Republish {
            source: s.sequenced_all(ORDERED),
            destination: s.data_all(),
            headers_only: false,
        }),
        ..Default::default()
    }];
    for r in topics.retentions() {
        let class = class_of(r);
        configs.push(stream::Config {
            name: stream_name(conn, &class),
            subjects: vec![s.sequenced_all(&class)],
            storage: stream::StorageType::File,
            max_messages_per_subject: i64::try_from(r.max_messages).unwrap_or(i64::MAX),
            max_age: r.max_age,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            republish: Some(stream::Republish {
                source: s.sequenced_all(&class),
                destination: s.data_all(),
                headers_only: false,
            }),
            ..Default::default()
        });
    }
    for config in configs {
        let name = config.name.clone();
        if js.update_stream(&config).await.is_err() {
            js.create_stream(config)
                .await
                .map_err(|e| format!("cannot create stream {name}: {e}"))?;
        }
    }
    Ok(())
}

/// The epoch of a stream: its creation time.
fn epoch_of(info: &stream::Info) -> Arc<str> {
    Arc::from(format!("j{:x}", info.created.unix_timestamp_nanos()))
}

fn unavailable(e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Unavailable(e.to_string())
}

/// The logged frame of a stored message (its payload is our envelope).
fn logged(seq: u64, epoch: &Arc<str>, payload: &bytes::Bytes, r: &Retention) -> Option<Frame> {
    match envelope::decode(payload).ok()?.delivery {
        Delivery::Frame(Frame::Text(text)) => {
            Some(Frame::logged(seq, epoch.clone(), text, r.render))
        }
        _ => None,
    }
}

/// The epoch of `r`'s stream (for live frames).
pub(crate) async fn epoch(conn: &NatsConn, r: &Retention) -> Result<Arc<str>, HistoryError> {
    let client = conn
        .client_within(conn.options().request_timeout)
        .await
        .map_err(unavailable)?;
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(stream_name(conn, &class_of(r)))
        .await
        .map_err(unavailable)?;
    let info = stream.info().await.map_err(unavailable)?;
    Ok(epoch_of(info))
}

/// Reads `topic`'s history from `r`'s stream.
pub(crate) async fn read(
    conn: &NatsConn,
    topic: &str,
    r: &Retention,
    query: &HistoryQuery,
) -> Result<History, HistoryError> {
    let timeout = conn.options().request_timeout;
    let client = conn.client_within(timeout).await.map_err(unavailable)?;
    let js = jetstream::new(client);
    let class = class_of(r);
    let mut stream = js
        .get_stream(stream_name(conn, &class))
        .await
        .map_err(unavailable)?;
    let info = stream.info().await.map_err(unavailable)?;
    let epoch = epoch_of(info);
    let last_in_stream = info.state.last_sequence;
    let ever_dropped = info.state.first_sequence > 1;
    let subject = conn.subjects().sequenced(&class, topic);
    let top = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => m.sequence,
        // No message of this topic is stored (yet, or any more).
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
        Err(e) => return Err(unavailable(e)),
    };
    let start = match query {
        HistoryQuery::Last(_) => consumer::DeliverPolicy::All,
        HistoryQuery::After {
            epoch: theirs,
            offset,
        } => {
            if theirs.as_str() != &*epoch || *offset > last_in_stream {
                return Err(HistoryError::EpochChanged { epoch, top });
            }
            if *offset == 0 {
                // "From the start of the epoch": complete only if the stream
                // never dropped anything (it cannot say which channel lost what).
                if ever_dropped {
                    return Err(HistoryError::Expired { epoch, top });
                }
                consumer::DeliverPolicy::All
            } else {
                let kept = stream
                    .get_raw_message(*offset)
                    .await
                    .is_ok_and(|m| m.subject.as_str() == subject);
                if !kept {
                    return Err(HistoryError::Expired { epoch, top });
                }
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: offset + 1,
                }
            }
        }
    };
    // Nothing to read: no message yet, none asked for, or none after the offset.
    let nothing = match query {
        HistoryQuery::Last(n) => *n == 0,
        HistoryQuery::After { offset, .. } => *offset >= top,
    };
    if top == 0 || nothing {
        return Ok(History {
            epoch,
            frames: Vec::new(),
            top,
        });
    }
    let mut frames = Vec::new();
    let mut cons = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: start,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let pending = cons.info().await.map_err(unavailable)?.num_pending;
    if pending > 0 {
        let mut msgs = cons.messages().await.map_err(unavailable)?;
        let read = async {
            for _ in 0..pending {
                let Some(m) = msgs.next().await else { break };
                let m = m.map_err(unavailable)?;
                let seq = m.info().map_err(unavailable)?.stream_sequence;
                if let Some(f) = logged(seq, &epoch, &m.payload, r) {
                    frames.push(f);
                }
                if seq >= top {
                    break;
                }
            }
            Ok::<(), HistoryError>(())
        };
        tokio::time::timeout(timeout + Duration::from_secs(1), read)
            .await
            .map_err(|_| HistoryError::Unavailable("history read timed out".into()))??;
    }
    if let HistoryQuery::Last(n) = query {
        let skip = frames.len().saturating_sub(*n);
        frames.drain(..skip);
    }
    Ok(History { epoch, frames, top })
}
