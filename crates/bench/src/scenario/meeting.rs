//! `meeting`: one meeting of `--members` members chatting through the
//! meetings service (pgeu-meetingserver protocol), `--messages` lines each,
//! at `--rate` lines a second over all members (0: each member sends its next
//! line as soon as the previous one came back).
//!
//! Setup: through the native setup API on the target (`POST
//! /meeting/api/meetings`, `/members`, `/meetings/{id}/keys`; loopback or
//! `--admin-token`), then every member opens `/ws/meeting/{id}/{key}/0` and
//! waits until it has seen every member's join line. With `--member-url`
//! (repeated: the nodes of a cluster) members connect round-robin to those;
//! the first member's node then owns the meeting.
//!
//! Measured: lines stored per second (every line is stored before anyone
//! sees it, so a line that arrived is a stored line), deliveries per second
//! (each line reaches every member, the sender included), and send → arrival
//! latency (one clock: every member is in this process). Checked: every member
//! gets every line once, each sender's lines in order, ids only increasing,
//! and no member is disconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use http::Uri;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use tokio_websockets::{ClientBuilder, Limits, Message};

use super::{Ctx, End, next_text};
use crate::cli::secs;
use crate::net::{Dialer, NetError, Target, WsConn};
use crate::payload::{self, HEADER_LEN, Stamp};
use crate::progress::Progress;
use crate::report::{Failures, Lines, Summary, fmt_count, fmt_latency, fmt_rate, fmt_tally};
use crate::stats::{Latency, LatencySummary, Tally};

/// `meeting` options.
#[derive(Debug, Clone, Args)]
pub struct MeetingArgs {
    /// Members in the meeting (one connection each).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub members: u64,
    /// Lines each member sends.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Lines a second over all members (0: closed loop, each member waits for its line).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Bytes of each line's text (at least 24).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(24..=10_000))]
    pub size: u64,
    /// Token for the setup API when the bench is not on the server's loopback.
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Give up on a member when nothing arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Where members connect (repeat for the nodes of a cluster; members go
    /// round-robin). Default: the target URL.
    #[arg(long = "member-url")]
    pub member_urls: Vec<String>,
}

/// Why the run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    /// The arguments do not work together.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// Dialing failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The setup API refused or failed.
    #[error("setup {what}: {reason}")]
    Setup {
        /// The request.
        what: String,
        /// What the server said, or what went wrong.
        reason: String,
    },
}

/// The result of a `meeting` run.
#[derive(Debug, Serialize)]
pub struct MeetingSummary {
    /// Members.
    pub members: u64,
    /// Lines per member.
    pub messages: u64,
    /// Bytes per line.
    pub size: u64,
    /// Offered lines a second (0: closed loop).
    pub rate: f64,
    /// Seconds to set up and connect everyone.
    pub setup_secs: f64,
    /// Members connected.
    pub connected: u64,
    /// Lines sent.
    pub sent: u64,
    /// Deliveries expected (sent × members).
    pub expected: u64,
    /// Deliveries that arrived.
    pub delivered: u64,
    /// Deliveries that arrived out of their sender's order.
    pub out_of_order: u64,
    /// Deliveries whose id was not above the previous one's.
    pub id_regressions: u64,
    /// Seconds from the first send to the last delivery.
    pub exchange_secs: f64,
    /// Lines stored (and delivered) a second.
    pub stored_per_sec: f64,
    /// Deliveries a second.
    pub delivered_per_sec: f64,
    /// Send → arrival of every delivery.
    pub latency: LatencySummary,
    /// Members that ended early, by how.
    pub disconnects: Tally,
    /// Connection failures, by kind.
    pub errors: Tally,
}

impl Summary for MeetingSummary {
    fn scenario(&self) -> &'static str {
        "meeting"
    }

    fn failures(&self) -> Vec<String> {
        Failures::default()
            .short_of(self.delivered, self.expected, "deliveries missing")
            .count(self.out_of_order, "deliveries out of order")
            .count(self.id_regressions, "ids did not increase")
            .count(self.disconnects.total(), "members ended early")
            .count(self.errors.total(), "members failed to connect")
            .into_vec()
    }

    fn human(&self, out: &mut Lines) {
        out.kv(
            "shape",
            format!(
                "{} members × {} lines of {} B, {}",
                self.members,
                self.messages,
                self.size,
                if self.rate > 0.0 {
                    format!("offered {}", fmt_rate(self.rate))
                } else {
                    "closed loop".to_owned()
                }
            ),
        );
        out.kv(
            "setup",
            format!("{} connected in {:.2} s", self.connected, self.setup_secs),
        );
        out.kv(
            "delivered",
            format!(
                "{} of {} in {:.2} s",
                fmt_count(self.delivered as f64),
                fmt_count(self.expected as f64),
                self.exchange_secs
            ),
        );
        out.kv("stored", fmt_rate(self.stored_per_sec));
        out.kv("deliveries", fmt_rate(self.delivered_per_sec));
        out.kv("latency", fmt_latency(&self.latency));
        out.kv(
            "errors",
            format!(
                "out of order {}, id regressions {}, disconnects {}, connect failures {}",
                self.out_of_order,
                self.id_regressions,
                fmt_tally(&self.disconnects),
                fmt_tally(&self.errors)
            ),
        );
    }
}

/// One request to the setup API; returns the JSON answer.
async fn setup(
    dialer: &Dialer,
    authority: &str,
    token: Option<&str>,
    path: &str,
    body: &str,
) -> Result<serde_json::Value, MeetingError> {
    let fail = |reason: String| MeetingError::Setup {
        what: path.to_owned(),
        reason,
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut tcp = dialer.tcp().await?;
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, MeetingError>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| fail("timed out".into()))??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&reply) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(fail("unreadable reply".into())),
    };
    let body = String::from_utf8_lossy(&reply[head_len..]);
    if parsed.code != Some(201) {
        return Err(fail(format!("{:?} {body}", parsed.code)));
    }
    serde_json::from_str(&body).map_err(|e| fail(e.to_string()))
}

/// A line's text: the stamp, padded to `size` bytes.
fn line_text(stamp: Stamp, size: usize) -> String {
    let mut head = [0u8; HEADER_LEN];
    // The buffer is exactly HEADER_LEN: encoding cannot fail.
    let _ = payload::encode_into(&mut head, stamp);
    let mut s = String::with_capacity(size);
    s.push_str(std::str::from_utf8(&head).unwrap_or("000000000000000000000000"));
    s.extend(std::iter::repeat_n('x', size.saturating_sub(HEADER_LEN)));
    s
}

/// A bench line in a `message` frame: its id and stamp. Scans the frame
/// (the server writes `{"type":"message","data":{"id":N,…,"message":"TEXT"}}`)
/// instead of parsing it, so the generator's cost per delivery stays small.
fn parse_line(text: &str) -> Option<(i64, Stamp)> {
    let rest = text.strip_prefix("{\"type\":\"message\",\"data\":{\"id\":")?;
    let digits = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'-')
        .count();
    let id: i64 = rest[..digits].parse().ok()?;
    const MARK: &str = ",\"message\":\"";
    let at = rest.rfind(MARK)?;
    let stamp = payload::decode(&rest.as_bytes()[at + MARK.len()..]).ok()?;
    Some((id, stamp))
}

/// What one member observed.
#[derive(Debug)]
struct Member {
    delivered: u64,
    out_of_order: u64,
    id_regressions: u64,
    latency: Latency,
    end: End,
    finished: Instant,
}

struct Plan {
    members: u64,
    messages: u64,
    size: usize,
    /// Time between a member's lines (zero: closed loop).
    interval: Duration,
    idle: Duration,
    start: Arc<Barrier>,
}

impl Plan {
    /// When member `index` sends its first line, after the start (paced runs only).
    fn phase(&self, index: u64) -> Duration {
        if self.members == 0 {
            return Duration::ZERO;
        }
        let share = (index % self.members) as f64 / self.members as f64;
        self.interval.mul_f64(share)
    }
}

/// One member: waits for everyone's join, then sends its lines and reads
/// until it has every member's.
async fn member(ws: WsConn, index: u64, plan: Arc<Plan>, progress: Arc<Progress>) -> Member {
    let stream = (index % u64::from(u16::MAX)) as u16;
    let mut m = Member {
        delivered: 0,
        out_of_order: 0,
        id_regressions: 0,
        latency: Latency::compact(),
        end: End::Done,
        finished: Instant::now(),
    };
    let (mut tx, mut rx) = ws.split();
    let mut next_seq = vec![0u32; usize::try_from(plan.members).unwrap_or(0)];
    let expected = plan.members * plan.messages;
    // Joined: count the join lines until every member is in.
    let mut joins = 0u64;
    let outcome: Result<(), End> = async {
        while joins < plan.members {
            let frame = next_text(&mut rx, plan.idle).await?;
            // Join lines come live, or several at once in the history replay.
            joins += frame
                .as_text()
                .unwrap_or_default()
                .matches("joined the meeting\"")
                .count() as u64;
        }
        plan.start.wait().await;
        // Paced: member i starts i/members of an interval late, so the members' lines
        // interleave evenly instead of all members sending at once every interval.
        let t0 = Instant::now() + plan.phase(index);
        let mut sent = 0u64;
        let mut last_id = 0i64;
        let mut own_back = 0u64;
        while m.delivered < expected {
            // Send when it is time (paced) or when our previous line came back (closed loop).
            let due = sent < plan.messages
                && if plan.interval.is_zero() {
                    own_back == sent
                } else {
                    Instant::now() >= t0 + plan.interval * u32::try_from(sent).unwrap_or(u32::MAX)
                };
            if due {
                let stamp = Stamp {
                    stream,
                    seq: u32::try_from(sent).unwrap_or(u32::MAX),
                    sent_ns: payload::now_ns(),
                };
                let frame =
                    serde_json::json!({"type": "message", "message": line_text(stamp, plan.size)});
                tx.send(Message::text(frame.to_string()))
                    .await
                    .map_err(|e| End::from_error(&e))?;
                Progress::add(&progress.sent, 1);
                sent += 1;
                continue;
            }
            let wait = if plan.interval.is_zero() || sent >= plan.messages {
                plan.idle
            } else {
                (t0 + plan.interval * u32::try_from(sent).unwrap_or(u32::MAX))
                    .saturating_duration_since(Instant::now())
            };
            let frame = match tokio::time::timeout(wait, next_text(&mut rx, plan.idle)).await {
                Err(_) if sent < plan.messages => continue,
                Err(_) => return Err(End::Stopped),
                Ok(r) => r?,
            };
            let Some((id, stamp)) = parse_line(frame.as_text().unwrap_or_default()) else {
                continue;
            };
            m.delivered += 1;
            Progress::add(&progress.received, 1);
            m.latency
                .record_ns(payload::now_ns().saturating_sub(stamp.sent_ns));
            if id <= last_id {
                m.id_regressions += 1;
            }
            last_id = id;
            if let Some(seq) = next_seq.get_mut(usize::from(stamp.stream)) {
                if stamp.seq != *seq {
                    m.out_of_order += 1;
                }
                *seq = stamp.seq.wrapping_add(1);
            }
            if stamp.stream == stream {
                own_back += 1;
            }
        }
        Ok(())
    }
    .await;
    m.finished = Instant::now();
    if let Err(end) = outcome {
        m.end = end;
    }
    m
}

/// Runs the `meeting` scenario.
pub async fn run(ctx: &Ctx, args: &MeetingArgs) -> Result<MeetingSummary, MeetingError> {
    if args.rate < 0.0 || !args.rate.is_finite() {
        return Err(MeetingError::Args("--rate must be 0 or positive".into()));
    }
    let authority = ctx.target.authority().to_owned();
    let token = args.admin_token.as_deref();
    let progress = ctx.progress.clone();
    progress.set_phase("setup");
    let started = Instant::now();
    let meeting = setup(
        &ctx.dialer,
        &authority,
        token,
        "/meeting/api/meetings",
        r#"{"name":"bench"}"#,
    )
    .await?["id"]
        .as_i64()
        .ok_or_else(|| MeetingError::Setup {
            what: "meeting".into(),
            reason: "no id".into(),
        })?;
    let mut keys = Vec::new();
    for i in 0..args.members {
        let member = setup(
            &ctx.dialer,
            &authority,
            token,
            "/meeting/api/members",
            &format!(r#"{{"name":"member {i}"}}"#),
        )
        .await?["id"]
            .clone();
        let key = setup(
            &ctx.dialer,
            &authority,
            token,
            &format!("/meeting/api/meetings/{meeting}/keys"),
            &format!(r#"{{"member":{member}}}"#),
        )
        .await?;
        keys.push(key["key"].as_str().unwrap_or_default().to_owned());
    }
    progress.set_phase("connect");
    let permits = Arc::new(Semaphore::new(ctx.common.connect_concurrency().max(1)));
    let mut nodes: Vec<(Arc<Dialer>, String)> = Vec::new();
    for url in &args.member_urls {
        let t = Target::resolve(url).await?;
        let d = Dialer::new(&t, ctx.common.sources, ctx.common.connect_timeout());
        nodes.push((Arc::new(d), t.authority().to_owned()));
    }
    if nodes.is_empty() {
        nodes.push((ctx.dialer.clone(), authority.clone()));
    }
    let mut tasks = JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        let (dialer, node) = nodes[i % nodes.len()].clone();
        let uri: Uri = format!("ws://{node}/ws/meeting/{meeting}/{key}/0")
            .parse()
            .map_err(|e: http::uri::InvalidUri| NetError::InvalidUrl {
                url: node.clone(),
                reason: e.to_string(),
            })?;
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let dial = async {
                let tcp = dialer.tcp().await?;
                ClientBuilder::from_uri(uri)
                    .limits(Limits::unlimited())
                    .connect_on(tcp)
                    .await
                    .map(|(ws, _)| ws)
                    .map_err(NetError::Handshake)
            };
            let r = tokio::time::timeout(Duration::from_secs(30), dial)
                .await
                .map_err(|_| NetError::Timeout("connect"))
                .and_then(|r| r);
            (i, r)
        });
    }
    let mut conns: Vec<Option<WsConn>> = (0..args.members).map(|_| None).collect();
    let mut errors = Tally::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, Ok(ws))) => {
                Progress::add(&progress.connected, 1);
                conns[i] = Some(ws);
            }
            Ok((_, Err(e))) => {
                Progress::add(&progress.connect_failed, 1);
                errors.add(e.label());
            }
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let connected = conns.iter().filter(|c| c.is_some()).count() as u64;
    let setup_secs = started.elapsed().as_secs_f64();
    let interval = if args.rate > 0.0 {
        Duration::from_secs_f64(args.members as f64 / args.rate)
    } else {
        Duration::ZERO
    };
    let plan = Arc::new(Plan {
        members: connected,
        messages: args.messages,
        size: usize::try_from(args.size).unwrap_or(64),
        interval,
        idle: secs(args.idle_timeout),
        start: Arc::new(Barrier::new(usize::try_from(connected).unwrap_or(0) + 1)),
    });
    progress.set_phase("exchange");
    let mut members = JoinSet::new();
    for (i, ws) in conns.into_iter().enumerate() {
        if let Some(ws) = ws {
            members.spawn(member(ws, i as u64, plan.clone(), progress.clone()));
        }
    }
    plan.start.wait().await;
    let t0 = Instant::now();
    let mut latency = Latency::precise();
    let mut disconnects = Tally::default();
    let (mut delivered, mut out_of_order, mut id_regressions) = (0, 0, 0);
    let mut exchange_secs = 0.0f64;
    while let Some(done) = members.join_next().await {
        let m = match done {
            Ok(m) => m,
            Err(e) => {
                errors.add(format!("task: {e}"));
                continue;
            }
        };
        exchange_secs = exchange_secs.max(m.finished.saturating_duration_since(t0).as_secs_f64());
        delivered += m.delivered;
        out_of_order += m.out_of_order;
        id_regressions += m.id_regressions;
        latency.merge(&m.latency);
        if m.end != End::Done {
            disconnects.add(m.end.label());
        }
    }
    progress.set_phase("done");
    let sent = connected * args.messages;
    let per_sec = |n: u64| {
        if exchange_secs > 0.0 {
            n as f64 / exchange_secs
        } else {
            0.0
        }
    };
    Ok(MeetingSummary {
        members: args.members,
        messages: args.messages,
        size: args.size,
        rate: args.rate,
        setup_secs,
        connected,
        sent,
        expected: sent * connected,
        delivered,
        out_of_order,
        id_regressions,
        exchange_secs,
        stored_per_sec: per_sec(sent),
        delivered_per_sec: per_sec(delivered),
        latency: latency.summary(),
        disconnects,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_carries_its_stamp_through_the_message_frame() {
        let stamp = Stamp {
            stream: 7,
            seq: 42,
            sent_ns: 123_456,
        };
        let text = line_text(stamp, 64);
        assert_eq!(text.len(), 64);
        // As the server writes it: "type" first.
        let frame = format!(
            r#"{{"type":"message","data":{{"id":9,"time":"00:00:00","date":"2025-01-01","from":1,"fromname":"a","color":"1","message":"{text}"}}}}"#
        );
        assert_eq!(parse_line(&frame), Some((9, stamp)));
        assert_eq!(parse_line(r#"{"type":"users","data":{}}"#), None);
    }

    #[test]
    fn paced_members_interleave_evenly() {
        let plan = Plan {
            members: 4,
            messages: 1,
            size: 64,
            interval: Duration::from_millis(200),
            idle: Duration::from_secs(1),
            start: Arc::new(Barrier::new(1)),
        };
        let phases: Vec<_> = (0..4).map(|i| plan.phase(i)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(phases, [ms(0), ms(50), ms(100), ms(150)]);
    }
}
