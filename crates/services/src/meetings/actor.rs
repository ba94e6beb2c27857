//! The meeting actor: one task per meeting that owns all of its state (the
//! state machine, who is connected, colors, the running poll and its timer)
//! and is the meeting's only writer to the log.
//!
//! **Stored before broadcast.** Every line (chat or system) is appended to the
//! store first and sent only once it committed, with the stored id; a line
//! anyone saw is in the archive. Commands are taken from the queue in batches:
//! a run of consecutive chat messages is appended in one transaction (group
//! commit), every other command is carried out on its own, in order. Frames a
//! command produces are queued in order with its lines ([`Out`]) and sent when
//! the lines are stored, so clients see the same order as the original.
//!
//! **Re-derivable.** On start the actor reads the meeting's state and its
//! running poll (with votes) from the store; the poll's timer resumes from the
//! stored closing time. While running it re-reads the state every
//! `state_poll` (pgeu-system changes it without telling anyone).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, histogram};
use switchboard_core::registry::Registration;
use switchboard_core::store::meetings::{
    KeyId, MeetingId, MeetingState, MemberKey, NewLine, PollEnd,
};
use switchboard_core::store::{MeetingStore, StoreError};
use switchboard_core::{
    ClaimGuard, ConnId, Frame, NodeId, OutboxSender, Presence, Relay, Subscription,
};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::handle::{Cmd, Join, MeetingHandle, MeetingStatus, MemberStatus, Sink};
use super::poll::Poll;
use super::remote::{self, owner_gone};
use super::wire::{self, LineMsg, SYSTEM_COLOR, UserMsg};
use super::{disconnect_for, texts};

/// Settings of one meeting's actor.
#[derive(Debug, Clone)]
pub(crate) struct ActorConfig {
    /// Commands queued at most (overflow: the sender is told the meeting is busy).
    pub(crate) queue: usize,
    /// Commands taken from the queue at once (the largest group commit).
    pub(crate) batch: usize,
    /// How often the meeting's state is re-read from the store.
    pub(crate) state_poll: Duration,
    /// How long a poll's "minute" is.
    pub(crate) poll_minute: Duration,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
}

/// What an actor that owns its meeting cluster-wide holds (see [`remote`]).
pub(crate) struct Owned {
    /// Where the claim is checked.
    pub(crate) presence: Presence,
    /// The owner's endpoint: the claim's holder, subscribed to the owner topic.
    pub(crate) endpoint: ConnId,
    /// The endpoint's outbox, closed when the actor stops (ending its forwarder).
    pub(crate) inbox: OutboxSender,
    /// Nodes declared dead (their members are gone).
    pub(crate) departures: broadcast::Receiver<NodeId>,
    /// Cancelled when nobody can reach this owner any more.
    pub(crate) lost: CancellationToken,
    /// Released when the actor stops.
    pub(crate) _claim: ClaimGuard,
    pub(crate) _subscription: Subscription,
    pub(crate) _registration: Registration,
}

/// A member this meeting has seen.
#[derive(Debug)]
struct Member {
    info: MemberKey,
    color: String,
    /// Whether the member may join while the meeting is open (the store's
    /// value, kept in step with this actor's own writes).
    allow_rejoin: bool,
    conn: Option<Connected>,
}

#[derive(Debug)]
struct Connected {
    conn: ConnId,
    sink: Sink,
    remote: String,
}

impl Member {
    fn user(&self) -> UserMsg {
        UserMsg {
            name: self.info.name.clone(),
            color: self.color.clone(),
            id: self.info.key_id,
        }
    }
}

/// Something a command produced, sent once its lines are stored.
#[derive(Debug)]
enum Out {
    /// A log line: stored, then sent to everyone connected.
    Line {
        line: NewLine,
        /// Sender's key id, name and color (`None`: system).
        sender: Option<(KeyId, String, String)>,
        /// Who to tell if it cannot be stored.
        origin: Option<KeyId>,
    },
    /// A frame for everyone connected except `except`.
    All { frame: Frame, except: Option<KeyId> },
    /// A frame for admins and another for everyone else.
    Split { admins: Frame, others: Frame },
    /// A frame for one member.
    To { key: KeyId, frame: Frame },
}

/// Round-robin colors `"1"`..`"9"`, `"0"`, stable per key id.
#[derive(Debug, Default)]
struct Colors {
    next: u8,
    given: BTreeMap<KeyId, String>,
}

impl Colors {
    fn of(&mut self, key: KeyId) -> String {
        if let Some(c) = self.given.get(&key) {
            return c.clone();
        }
        self.next = (self.next + 1) % 10;
        let c = self.next.to_string();
        self.given.insert(key, c.clone());
        c
    }
}

/// What the loop does after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

pub(crate) struct Actor {
    id: MeetingId,
    poll_minute: Duration,
    state: MeetingState,
    store: Arc<dyn MeetingStore>,
    /// Reaches members connected to other nodes.
    relay: Relay,
    members: BTreeMap<KeyId, Member>,
    colors: Colors,
    poll: Option<Poll>,
    out: Vec<Out>,
    /// Members on other nodes whose frames the bus refused: they have missed
    /// something, so they are dropped (and their pages reconnect and replay).
    unreachable: std::sync::Mutex<Vec<(KeyId, ConnId)>>,
    /// This actor's writer epoch for the meeting's log, taken from the store
    /// when the actor starts (before that, 0: no writer).
    writer: i64,
    /// The store refused an append: another owner took the meeting over.
    fenced: bool,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// Starts the actor of meeting `id`, known to be in `state`; `on_stop` runs
/// when it stops (the meeting closed, the server shuts down, or the meeting's
/// claim was lost). `owned`: the cluster-wide claim it runs under.
pub(crate) fn spawn(
    id: MeetingId,
    state: MeetingState,
    store: Arc<dyn MeetingStore>,
    relay: Relay,
    owned: Option<Owned>,
    cfg: ActorConfig,
    on_stop: impl FnOnce() + Send + 'static,
) -> MeetingHandle {
    let (tx, rx) = mpsc::channel(cfg.queue);
    let actor = Actor {
        id,
        poll_minute: cfg.poll_minute,
        state,
        store,
        relay,
        members: BTreeMap::new(),
        colors: Colors::default(),
        poll: None,
        out: Vec::new(),
        unreachable: Default::default(),
        writer: 0,
        fenced: false,
    };
    tokio::spawn(async move {
        actor.run(rx, owned, cfg).await;
        on_stop();
    });
    MeetingHandle { id, tx }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        mut owned: Option<Owned>,
        cfg: ActorConfig,
    ) {
        tracing::info!(
            meeting = self.id,
            state = self.state.name(),
            "meeting started"
        );
        // Taking the writer first fences a cut-off previous owner at once.
        // Without it the actor cannot store anything: it stops, and the next
        // member to connect starts the meeting again.
        match self.store.take_writer(self.id).await {
            Ok(w) => self.writer = w,
            Err(e) => {
                counter!("switchboard_meetings_store_errors_total", "op" => "take_writer")
                    .increment(1);
                tracing::warn!(meeting = self.id, error = %e, "cannot take the meeting's log over");
                self.fenced = true;
            }
        }
        match self.store.active_poll(self.id).await {
            Ok(Some(record)) => self.poll = Some(Poll::restored(record, now_ms())),
            Ok(None) => {}
            Err(e) => tracing::warn!(meeting = self.id, error = %e, "cannot read the running poll"),
        }
        let mut refresh = tokio::time::interval_at(Instant::now() + cfg.state_poll, cfg.state_poll);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cmds = Vec::with_capacity(cfg.batch);
        let shutdown = cfg.shutdown.clone();
        let stopped = shutdown.cancelled();
        tokio::pin!(stopped);
        let lost = owned.as_ref().map(|o| o.lost.clone()).unwrap_or_default();
        let mut departures = owned.as_ref().map(|o| o.departures.resubscribe());
        loop {
            if self.fenced {
                self.give_up("it cannot write the meeting's log (taken over, or no store)");
                break;
            }
            let deadline = self.poll.as_ref().map(|p| (p.id, p.deadline));
            let flow = tokio::select! {
                biased;
                () = &mut stopped => {
                    // This node's sockets end by themselves; members on other
                    // nodes are dropped now, to find the meeting's next owner.
                    self.drop_remote_members();
                    Flow::Stop
                }
                () = lost.cancelled() => {
                    self.give_up("its owner endpoint was closed");
                    Flow::Stop
                }
                node = next_departure(&mut departures) => self.node_died(node).await,
                n = rx.recv_many(&mut cmds, cfg.batch) => {
                    if n == 0 {
                        Flow::Stop
                    } else {
                        self.handle_batch(&mut cmds).await
                    }
                }
                () = until(deadline.map(|d| d.1)) => {
                    if let Some((poll, _)) = deadline {
                        self.poll_timer(poll).await;
                    }
                    Flow::Continue
                }
                _ = refresh.tick() => {
                    match self.refresh_state().await {
                        Flow::Continue if !self.still_owner(owned.as_mut()).await => {
                            self.give_up("another node holds its claim");
                            Flow::Stop
                        }
                        flow => flow,
                    }
                }
            };
            let pending = !self
                .unreachable
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            let flow = if flow == Flow::Continue && pending {
                self.drop_unreachable().await
            } else {
                flow
            };

            if flow == Flow::Stop {
                break;
            }
        }
        if let Some(o) = owned {
            o.inbox.close(owner_gone());
        }
        tracing::info!(meeting = self.id, "meeting stopped");
    }

    /// Whether this actor still holds its meeting's claim (always, on its own).
    /// A node cut off from the others for longer than their liveness timeout
    /// finds its claim taken over and stops, so one writer is left.
    async fn still_owner(&self, owned: Option<&mut Owned>) -> bool {
        let Some(o) = owned else { return true };
        match o.presence.holder(remote::SPACE, &self.id.to_string()).await {
            Ok(Some(h)) => h.conn == o.endpoint,
            Ok(None) => false,
            // Cannot tell now; the next tick asks again.
            Err(_) => true,
        }
    }

    /// Drops every member without a `disconnect` line (so each page reconnects
    /// and finds the meeting's owner again) before the actor stops.
    fn give_up(&mut self, why: &str) {
        tracing::warn!(meeting = self.id, "giving the meeting up: {why}");
        let ended: Vec<Connected> = self
            .members
            .values_mut()
            .filter_map(|m| m.conn.take())
            .collect();
        for c in ended {
            self.drop_quietly(&c.sink);
        }
    }

    fn drop_remote_members(&mut self) {
        let remote: Vec<Connected> = self
            .members
            .values_mut()
            .filter(|m| matches!(m.conn.as_ref().map(|c| &c.sink), Some(Sink::Remote(_))))
            .filter_map(|m| m.conn.take())
            .collect();
        for c in remote {
            self.drop_quietly(&c.sink);
        }
    }

    /// Ends a connection without a `disconnect` line: its page reconnects.
    fn drop_quietly(&self, sink: &Sink) {
        match sink {
            Sink::Local(outbox) => outbox.close(owner_gone()),
            Sink::Remote(topic) => {
                let _ = self.relay.close_topic(topic, owner_gone(), None);
            }
        }
    }

    /// Members connected through `node`, which died, have left.
    async fn node_died(&mut self, node: NodeId) -> Flow {
        let gone: Vec<(KeyId, ConnId)> = self
            .members
            .iter()
            .filter_map(|(k, m)| m.conn.as_ref().map(|c| (*k, c.conn)))
            .filter(|(_, c)| c.node() == node)
            .collect();
        if !gone.is_empty() {
            tracing::info!(meeting = self.id, node = %node, members = gone.len(), "members' node died");
        }
        for (key, conn) in gone {
            // In case the node is alive after all (declared dead in a NATS
            // outage): its connection must not linger unheard.
            let _ = self
                .relay
                .close_topic(&remote::connection_topic(conn), owner_gone(), None);
            if self.leave(key, conn).await == Flow::Stop {
                return Flow::Stop;
            }
            self.flush().await;
        }
        Flow::Continue
    }

    async fn handle_batch(&mut self, cmds: &mut Vec<Cmd>) -> Flow {
        let mut chats = 0usize;
        for cmd in cmds.drain(..) {
            if let Cmd::Client {
                key_id,
                conn,
                command: wire::Command::Message(text),
            } = cmd
            {
                // Consecutive chat lines share one commit.
                if self.is_current(key_id, conn) {
                    self.chat(key_id, text);
                    chats += 1;
                } else {
                    self.stale(conn);
                }
                continue;
            }
            if chats > 0 {
                self.flush().await;
                chats = 0;
            }
            let flow = self.handle(cmd).await;
            self.flush().await;
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        self.flush().await;
        Flow::Continue
    }

    async fn handle(&mut self, cmd: Cmd) -> Flow {
        match cmd {
            Cmd::Join(j) => self.join(*j).await,
            Cmd::Leave { key_id, conn } => return self.leave(key_id, conn).await,
            Cmd::Client {
                key_id,
                conn,
                command,
            } => {
                if self.is_current(key_id, conn) {
                    self.command(key_id, command).await;
                } else {
                    self.stale(conn);
                }
            }
            Cmd::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
        Flow::Continue
    }

    /// A command from a connection that is not (or no longer) a member's
    /// current one. On this node its session has been ended already; on
    /// another node it may not have heard (its node was thought dead, or a
    /// frame was lost on the bus): end it there, so its page reconnects.
    fn stale(&self, conn: ConnId) {
        if conn.node() != self.relay.node() {
            let _ = self
                .relay
                .close_topic(&remote::connection_topic(conn), owner_gone(), None);
        }
    }

    fn key_of(&self, conn: ConnId) -> Option<KeyId> {
        self.members
            .iter()
            .find(|(_, m)| m.conn.as_ref().is_some_and(|c| c.conn == conn))
            .map(|(k, _)| *k)
    }

    /// Drops the members the bus could not reach (see `unreachable`).
    async fn drop_unreachable(&mut self) -> Flow {
        let gone = std::mem::take(
            self.unreachable
                .get_mut()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (key, conn) in gone {
            if let Some(c) = self.members.get(&key).and_then(|m| m.conn.as_ref())
                && c.conn == conn
            {
                self.drop_quietly(&c.sink);
            }
            if self.leave(key, conn).await == Flow::Stop {
                return Flow::Stop;
            }
            self.flush().await;
        }
        Flow::Continue
    }

    fn is_current(&self, key: KeyId, conn: ConnId) -> bool {
        self.members
            .get(&key)
            .and_then(|m| m.conn.as_ref())
            .is_some_and(|c| c.conn == conn)
    }

    // ---- output ----

    fn say(&mut self, text: String) {
        self.out.push(Out::Line {
            line: NewLine { sender: None, text },
            sender: None,
            origin: None,
        });
    }

    fn to(&mut self, key: KeyId, frame: Frame) {
        self.out.push(Out::To { key, frame });
    }

    fn error(&mut self, key: KeyId, msg: &str) {
        self.to(key, wire::error(msg));
    }

    fn broadcast_poll(&mut self) {
        match &self.poll {
            Some(p) => {
                let (admins, others) = p.frames();
                self.out.push(Out::Split { admins, others });
            }
            None => self.out.push(Out::All {
                frame: wire::poll(None),
                except: None,
            }),
        }
    }

    fn poll_frame_for(&self, admin: bool) -> Frame {
        match &self.poll {
            Some(p) => {
                let (a, o) = p.frames();
                if admin { a } else { o }
            }
            None => wire::poll(None),
        }
    }

    fn status_frame(&self) -> Frame {
        wire::status(
            self.state == MeetingState::Open,
            self.state == MeetingState::Finished,
        )
    }

    /// Stores the queued lines in one transaction, then sends everything queued, in order.
    async fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let outs = std::mem::take(&mut self.out);
        let lines: Vec<NewLine> = outs
            .iter()
            .filter_map(|o| match o {
                Out::Line { line, .. } => Some(line.clone()),
                _ => None,
            })
            .collect();
        let stored = if lines.is_empty() {
            Ok(Vec::new())
        } else {
            let started = std::time::Instant::now();
            let r = self.store.append_lines(self.id, self.writer, &lines).await;
            histogram!("switchboard_meetings_append_seconds")
                .record(started.elapsed().as_secs_f64());
            histogram!("switchboard_meetings_append_lines").record(lines.len() as f64);
            r
        };
        let stored = match stored {
            Ok(s) => {
                counter!("switchboard_meetings_lines_stored_total").increment(s.len() as u64);
                Some(s)
            }
            Err(StoreError::Fenced { .. }) => {
                counter!("switchboard_meetings_fenced_total").increment(1);
                tracing::warn!(
                    meeting = self.id,
                    lines = lines.len(),
                    "lines refused: another node has taken the meeting over; they are not sent"
                );
                self.fenced = true;
                None
            }
            Err(e) => {
                counter!("switchboard_meetings_store_errors_total", "op" => "append_lines")
                    .increment(1);
                tracing::warn!(meeting = self.id, lines = lines.len(), error = %e, "cannot store lines; they are not sent");
                None
            }
        };
        let mut stored = stored.map(Vec::into_iter);
        for o in outs {
            match o {
                Out::Line {
                    line,
                    sender,
                    origin,
                } => match stored.as_mut().and_then(Iterator::next) {
                    Some(s) => {
                        let (from, fromname, color) = match sender {
                            Some((k, n, c)) => (k, n, c),
                            None => (-1, String::new(), SYSTEM_COLOR.to_owned()),
                        };
                        let msg = LineMsg {
                            id: s.id,
                            time: s.time,
                            date: s.date,
                            from,
                            fromname,
                            color,
                            message: line.text,
                        };
                        self.send_all(&wire::message(&msg), None);
                    }
                    None => {
                        if let Some(key) = origin {
                            self.send_to(key, &wire::error(texts::NOT_STORED));
                        }
                    }
                },
                Out::All { frame, except } => self.send_all(&frame, except),
                Out::Split { admins, others } => {
                    for m in self.members.values() {
                        if let Some(c) = &m.conn {
                            self.push(c, if m.info.admin { &admins } else { &others });
                        }
                    }
                }
                Out::To { key, frame } => self.send_to(key, &frame),
            }
        }
    }

    fn send_all(&self, frame: &Frame, except: Option<KeyId>) {
        for (k, m) in &self.members {
            if Some(*k) == except {
                continue;
            }
            if let Some(c) = &m.conn {
                self.push(c, frame);
            }
        }
    }

    fn send_to(&self, key: KeyId, frame: &Frame) {
        if let Some(c) = self.members.get(&key).and_then(|m| m.conn.as_ref()) {
            self.push(c, frame);
        }
    }

    // ---- joining and leaving ----

    async fn join(&mut self, j: Join) {
        let key = j.member.key_id;
        let known = self.members.get(&key);
        let allow_rejoin = known.map_or(j.member.allow_rejoin, |m| m.allow_rejoin);
        let refusal = match self.state {
            MeetingState::Closed => Some(texts::CLOSED),
            _ if j.member.admin => None,
            MeetingState::Finished => Some(texts::ALREADY_FINISHED),
            MeetingState::Open if !allow_rejoin => Some(texts::IN_PROGRESS),
            _ => None,
        };
        if let Some(reason) = refusal {
            tracing::info!(meeting = self.id, key_id = key, "join refused: {reason}");
            counter!("switchboard_meetings_refused_total", "reason" => "state").increment(1);
            self.end(&j.sink, reason);
            return;
        }
        let rejoined = known.is_some() || j.member.allow_rejoin;
        let color = match known {
            Some(m) => m.color.clone(),
            None => self.colors.of(key),
        };
        if let Some(old) = self.members.get_mut(&key).and_then(|m| m.conn.take()) {
            self.end(&old.sink, texts::REPLACED);
        }
        if !j.member.allow_rejoin
            && let Err(e) = self.store.set_allow_rejoin(self.id, key, true).await
        {
            tracing::warn!(meeting = self.id, key_id = key, error = %e, "cannot set allowrejoin");
        }
        let member = Member {
            info: j.member,
            color,
            allow_rejoin: true,
            conn: Some(Connected {
                conn: j.conn,
                sink: j.sink,
                remote: j.remote,
            }),
        };
        let user = member.user();
        let admin = member.info.admin;
        let name = member.info.name.clone();
        let proxy = member.info.proxy_name.clone();
        self.members.insert(key, member);
        tracing::info!(meeting = self.id, key_id = key, rejoined, "member joined");

        self.out.push(Out::All {
            frame: wire::adduser(&user),
            except: Some(key),
        });
        let users: Vec<UserMsg> = self
            .members
            .values()
            .filter(|m| m.conn.is_some())
            .map(Member::user)
            .collect();
        self.to(key, wire::users(&users));
        let status = self.status_frame();
        self.to(key, status);
        let poll = self.poll_frame_for(admin);
        self.to(key, poll);
        match self.store.lines_after(self.id, j.first).await {
            Ok(lines) => {
                let replay: Vec<LineMsg> = lines
                    .into_iter()
                    .map(|l| {
                        let (from, color) = match (l.sender, l.sender_key) {
                            (None, _) => (-1, SYSTEM_COLOR.to_owned()),
                            (Some(_), Some(k)) => (k, self.colors.of(k)),
                            (Some(_), None) => (-1, String::new()),
                        };
                        LineMsg {
                            id: l.stored.id,
                            time: l.stored.time,
                            date: l.stored.date,
                            from,
                            fromname: l.sender_name,
                            color,
                            message: l.text,
                        }
                    })
                    .collect();
                self.to(key, wire::messages(&replay));
            }
            Err(e) => {
                tracing::warn!(meeting = self.id, error = %e, "cannot read the history");
                counter!("switchboard_meetings_store_errors_total", "op" => "lines_after")
                    .increment(1);
                self.error(key, texts::NO_HISTORY);
            }
        }
        let re = if rejoined { "re-" } else { "" };
        self.say(match proxy {
            Some(p) => format!("Member {name} {re}joined the meeting (through proxy {p})"),
            None => format!("Member {name} {re}joined the meeting"),
        });
    }

    async fn leave(&mut self, key: KeyId, conn: ConnId) -> Flow {
        if !self.is_current(key, conn) {
            // Replaced, kicked or refused: already accounted for.
            return Flow::Continue;
        }
        let Some(member) = self.members.get_mut(&key) else {
            return Flow::Continue;
        };
        member.conn = None;
        let user = member.user();
        let name = member.info.name.clone();
        tracing::info!(meeting = self.id, key_id = key, "member left");
        self.out.push(Out::All {
            frame: wire::removeuser(&user),
            except: Some(key),
        });
        self.say(format!("Member {name} left the meeting"));
        if self.state == MeetingState::Finished && self.connected() == 0 {
            self.flush().await;
            tracing::info!(
                meeting = self.id,
                "last member left a finished meeting: closing it"
            );
            if let Err(e) = self
                .store
                .set_meeting_state(self.id, MeetingState::Closed)
                .await
            {
                tracing::warn!(meeting = self.id, error = %e, "cannot mark the meeting closed");
            }
            self.state = MeetingState::Closed;
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn connected(&self) -> usize {
        self.members.values().filter(|m| m.conn.is_some()).count()
    }

    // ---- members' commands ----

    fn chat(&mut self, key: KeyId, text: String) {
        let Some(m) = self.members.get(&key) else {
            return;
        };
        self.out.push(Out::Line {
            line: NewLine {
                sender: Some(m.info.member_id),
                text,
            },
            sender: Some((key, m.info.name.clone(), m.color.clone())),
            origin: Some(key),
        });
    }

    async fn command(&mut self, key: KeyId, command: wire::Command) {
        let Some(m) = self.members.get(&key) else {
            return;
        };
        if command.admin_only() && !m.info.admin {
            // The session refuses these already; the actor holds the same line.
            self.error(key, texts::PERMISSION_DENIED);
            return;
        }
        let name = m.info.name.clone();
        match command {
            wire::Command::Message(text) => self.chat(key, text),
            wire::Command::Vote { question, vote } => self.vote(key, &name, &question, vote).await,
            wire::Command::Open => self.open(key, &name).await,
            wire::Command::Finish => self.finish(key).await,
            wire::Command::NewPoll {
                question,
                answers,
                minutes,
            } => self.new_poll(key, question, answers, minutes).await,
            wire::Command::AbortPoll => self.abort_poll(key).await,
            wire::Command::Kick { user, can_rejoin } => {
                self.kick(key, &name, user, can_rejoin).await;
            }
        }
    }

    async fn open(&mut self, key: KeyId, name: &str) {
        if self.state == MeetingState::Open {
            self.error(key, "Meeting is already open");
            return;
        }
        let reopening = self.state == MeetingState::Finished;
        if !self.set_state(key, MeetingState::Open).await {
            return;
        }
        if reopening {
            self.say(format!("This meeting is being re-opened by {name}"));
        }
        self.say(texts::NOW_OPEN.to_owned());
        self.say("Anything sent from now on will be part of the permanent record".to_owned());
        let status = self.status_frame();
        self.out.push(Out::All {
            frame: status,
            except: None,
        });
    }

    async fn finish(&mut self, key: KeyId) {
        if self.state == MeetingState::Finished {
            self.error(key, "Meeting is already finished");
            return;
        }
        if !self.set_state(key, MeetingState::Finished).await {
            return;
        }
        self.say(texts::NOW_FINISHED.to_owned());
        let status = self.status_frame();
        self.out.push(Out::All {
            frame: status,
            except: None,
        });
    }

    /// Stores the new state first; on failure tells `key` and changes nothing.
    async fn set_state(&mut self, key: KeyId, state: MeetingState) -> bool {
        match self.store.set_meeting_state(self.id, state).await {
            Ok(_) => {
                self.state = state;
                true
            }
            Err(e) => {
                tracing::warn!(meeting = self.id, error = %e, "cannot store the meeting state");
                counter!("switchboard_meetings_store_errors_total", "op" => "set_meeting_state")
                    .increment(1);
                self.error(key, "Failed to update state in database");
                false
            }
        }
    }

    async fn new_poll(&mut self, key: KeyId, question: String, answers: Vec<String>, minutes: i64) {
        if self.poll.is_some() {
            self.error(key, "There is already an active poll");
            return;
        }
        let length = self
            .poll_minute
            .saturating_mul(u32::try_from(minutes.max(0)).unwrap_or(u32::MAX));
        let closes_at_ms =
            now_ms().saturating_add(i64::try_from(length.as_millis()).unwrap_or(i64::MAX));
        let id = match self
            .store
            .open_poll(self.id, &question, &answers, closes_at_ms)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(meeting = self.id, error = %e, "cannot store the poll");
                counter!("switchboard_meetings_store_errors_total", "op" => "open_poll")
                    .increment(1);
                self.error(key, texts::POLL_NOT_STORED);
                return;
            }
        };
        self.poll = Some(Poll {
            id,
            question: question.clone(),
            answers,
            votes: BTreeMap::new(),
            deadline: Instant::now() + length,
        });
        self.broadcast_poll();
        self.say(format!("A new poll has been posted for {question}"));
    }

    async fn vote(&mut self, key: KeyId, name: &str, question: &str, vote: i64) {
        let Some(poll) = &self.poll else {
            self.error(key, "There is no active poll");
            return;
        };
        if poll.question != question {
            self.error(key, "Vote for the wrong question received");
            return;
        }
        let Some(index) = usize::try_from(vote)
            .ok()
            .filter(|i| *i < poll.answers.len())
        else {
            self.error(key, "Invalid vote");
            return;
        };
        let poll_id = poll.id;
        if let Err(e) = self.store.record_vote(poll_id, key, index).await {
            tracing::warn!(meeting = self.id, error = %e, "cannot store a vote");
            counter!("switchboard_meetings_store_errors_total", "op" => "record_vote").increment(1);
            self.error(key, texts::VOTE_NOT_STORED);
            return;
        }
        let Some(poll) = self.poll.as_mut() else {
            return;
        };
        let answer = poll.answers[index].clone();
        let changed = poll.votes.insert(key, index).is_some();
        let all_voted = self
            .members
            .iter()
            .filter(|(_, m)| m.conn.is_some())
            .all(|(k, _)| poll.votes.contains_key(k));
        self.say(if changed {
            format!("{name} changed their vote to {answer}")
        } else {
            format!("{name} voted {answer}")
        });
        if all_voted {
            self.close_poll("All attendees have voted, poll has completed.")
                .await;
        } else {
            self.broadcast_poll();
        }
    }

    async fn close_poll(&mut self, why: &str) {
        let Some(poll) = self.poll.take() else {
            return;
        };
        if let Err(e) = self.store.end_poll(poll.id, PollEnd::Completed).await {
            tracing::warn!(meeting = self.id, error = %e, "cannot mark the poll completed");
        }
        let tally = poll.tally();
        self.say(why.to_owned());
        for (i, a) in poll.answers.iter().enumerate() {
            let n = tally.get(i).copied().unwrap_or(0);
            let s = if n == 1 { "" } else { "s" };
            self.say(format!("Answer \"{a}\": {n} vote{s}"));
        }
        self.broadcast_poll();
    }

    async fn abort_poll(&mut self, key: KeyId) {
        let Some(poll) = self.poll.take() else {
            self.error(key, "There is no active poll");
            return;
        };
        if let Err(e) = self.store.end_poll(poll.id, PollEnd::Aborted).await {
            tracing::warn!(meeting = self.id, error = %e, "cannot mark the poll aborted");
        }
        self.say("The current poll has has been aborted".to_owned());
        self.broadcast_poll();
    }

    async fn poll_timer(&mut self, poll: i64) {
        if self.poll.as_ref().is_some_and(|p| p.id == poll) {
            self.close_poll("Poll has completed").await;
            self.flush().await;
        }
    }

    async fn kick(&mut self, key: KeyId, admin_name: &str, target: KeyId, can_rejoin: bool) {
        let Some(t) = self.members.get_mut(&target) else {
            self.error(key, "User to kick not found");
            return;
        };
        let name = t.info.name.clone();
        let user = t.user();
        if !can_rejoin {
            t.allow_rejoin = false;
        }
        let was_connected = match t.conn.take() {
            Some(c) => {
                self.end(&c.sink, texts::KICKED);
                true
            }
            None => false,
        };
        tracing::info!(
            meeting = self.id,
            key_id = target,
            by = key,
            "member kicked"
        );
        self.say(format!("User {name} has been disconnected by {admin_name}"));
        if was_connected {
            self.out.push(Out::All {
                frame: wire::removeuser(&user),
                except: Some(target),
            });
        }
        if !can_rejoin && let Err(e) = self.store.set_allow_rejoin(self.id, target, false).await {
            tracing::warn!(meeting = self.id, error = %e, "cannot clear allowrejoin");
        }
    }

    // ---- state kept in step with the store ----

    async fn refresh_state(&mut self) -> Flow {
        let stored = match self.store.meeting_state(self.id).await {
            Ok(s) => s.unwrap_or(MeetingState::Closed),
            Err(e) => {
                tracing::debug!(meeting = self.id, error = %e, "cannot re-read the meeting state");
                return Flow::Continue;
            }
        };
        if stored == self.state {
            return Flow::Continue;
        }
        tracing::info!(
            meeting = self.id,
            from = self.state.name(),
            to = stored.name(),
            "meeting state changed in the store"
        );
        self.state = stored;
        if stored == MeetingState::Closed {
            let ended: Vec<Connected> = self
                .members
                .values_mut()
                .filter_map(|m| m.conn.take())
                .collect();
            for c in ended {
                self.end(&c.sink, texts::CLOSED);
            }
            return Flow::Stop;
        }
        let status = self.status_frame();
        self.send_all(&status, None);
        Flow::Continue
    }

    /// Queues `frame` for a connection: into its outbox on this node (an
    /// overflow ends it as a slow consumer), else on its topic through the bus.
    fn push(&self, c: &Connected, frame: &Frame) {
        match &c.sink {
            Sink::Local(outbox) => {
                // An overflow is counted by the socket runtime, like every slow consumer.
                let _ = outbox.push(frame.clone());
            }
            Sink::Remote(topic) => {
                if self.relay.publish(topic, frame.clone(), None).bus.is_err() {
                    counter!("switchboard_meetings_remote_undelivered_total").increment(1);
                    if let Some(key) = self.key_of(c.conn) {
                        self.unreachable
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((key, c.conn));
                    }
                }
            }
        }
    }

    /// Sends a `disconnect` line to a connection and ends it (without a Close
    /// frame), wherever it is.
    fn end(&self, sink: &Sink, reason: &'static str) {
        match sink {
            Sink::Local(outbox) => refuse(outbox, reason),
            Sink::Remote(topic) => {
                // One publisher, FIFO: the line arrives before the close.
                let _ = self.relay.publish(topic, wire::disconnect(reason), None);
                let _ = self.relay.close_topic(topic, disconnect_for(reason), None);
            }
        }
    }

    fn status(&self) -> MeetingStatus {
        let mut members = Vec::new();
        let mut gone = Vec::new();
        for m in self.members.values() {
            let s = MemberStatus {
                uid: m.info.member_id,
                name: m.info.name.clone(),
                admin: m.info.admin,
                remote: m
                    .conn
                    .as_ref()
                    .map(|c| c.remote.clone())
                    .unwrap_or_default(),
            };
            if m.conn.is_some() {
                members.push(s);
            } else {
                gone.push(s);
            }
        }
        MeetingStatus {
            id: self.id,
            state: self.state.name(),
            members,
            disconnectedmembers: (!gone.is_empty()).then_some(gone),
        }
    }
}

/// The next node declared dead, or never (alone, or the channel closed).
async fn next_departure(rx: &mut Option<broadcast::Receiver<NodeId>>) -> NodeId {
    loop {
        let Some(r) = rx.as_mut() else {
            return std::future::pending().await;
        };
        match r.recv().await {
            Ok(node) => return node,
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => *rx = None,
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends a `disconnect` line to a connection and ends it (without a Close frame).
pub(crate) fn refuse(outbox: &OutboxSender, reason: &'static str) {
    let _ = outbox.push(wire::disconnect(reason));
    outbox.close(disconnect_for(reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::store::MeetingAdmin;
    use switchboard_core::{Outbox, OutboxLimits, OutboxReceiver};
    use switchboard_store::SqliteStore;

    struct Rig {
        handle: MeetingHandle,
        rx: OutboxReceiver,
        key: KeyId,
        conn: ConnId,
        _shutdown: CancellationToken,
    }

    async fn rig(poll_minute: Duration) -> Rig {
        let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
        let id = store.create_meeting("t").await.expect("meeting");
        let member = store.create_member("Ada").await.expect("member");
        store.issue_key(id, member, "k", None).await.expect("key");
        store.add_admin(id, member).await.expect("admin");
        let info = store
            .member_by_key(id, "k")
            .await
            .expect("lookup")
            .expect("member");
        let shutdown = CancellationToken::new();
        let cfg = ActorConfig {
            queue: 16,
            batch: 16,
            state_poll: Duration::from_secs(3600),
            poll_minute,
            shutdown: shutdown.clone(),
        };
        let handle = spawn(
            id,
            MeetingState::Pending,
            store,
            Relay::new(switchboard_bus::LocalBus::single(Default::default()), 4),
            None,
            cfg,
            || {},
        );
        let (tx, rx) = Outbox::bounded(OutboxLimits::default());
        let conn = ConnId(1);
        let key = info.key_id;
        handle
            .send(Cmd::Join(Box::new(Join {
                member: info,
                conn,
                sink: Sink::Local(tx),
                first: 0,
                remote: "test".into(),
            })))
            .await
            .expect("join");
        Rig {
            handle,
            rx,
            key,
            conn,
            _shutdown: shutdown,
        }
    }

    impl Rig {
        async fn send(&self, command: wire::Command) {
            let cmd = Cmd::Client {
                key_id: self.key,
                conn: self.conn,
                command,
            };
            self.handle.send(cmd).await.expect("send");
        }

        /// Waits for a `message` line with `text`.
        async fn line(&mut self, text: &str) {
            let mut buf = Vec::new();
            loop {
                tokio::time::timeout(Duration::from_secs(10), self.rx.recv_many(&mut buf))
                    .await
                    .expect("a frame in time")
                    .expect("open");
                for f in buf.drain(..) {
                    let v: serde_json::Value = serde_json::from_slice(f.payload()).expect("json");
                    if v["type"] == "message" && v["data"]["message"] == text {
                        return;
                    }
                }
            }
        }
    }

    fn new_poll(q: &str, minutes: i64) -> wire::Command {
        wire::Command::NewPoll {
            question: q.into(),
            answers: vec!["a".into(), "b".into()],
            minutes,
        }
    }

    /// Fix: an aborted poll's timer never closes the next poll early.
    #[tokio::test]
    async fn each_poll_has_its_own_timer() {
        let minute = Duration::from_millis(150);
        let mut r = rig(minute).await;
        r.line("Member Ada joined the meeting").await;
        r.send(new_poll("A", 1)).await;
        r.line("A new poll has been posted for A").await;
        r.send(wire::Command::AbortPoll).await;
        r.line("The current poll has has been aborted").await;
        let b_started = std::time::Instant::now();
        r.send(new_poll("B", 4)).await;
        r.line("A new poll has been posted for B").await;
        r.line("Poll has completed").await;
        let lasted = b_started.elapsed();
        assert!(
            lasted >= minute * 4,
            "poll B closed after {lasted:?}, before its own time"
        );
    }
}
