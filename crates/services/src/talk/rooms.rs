//! Rooms in the hub: joining (after Nextcloud's room request), leaving
//! (with Nextcloud's `leave`), the `join`/`leave` events, relaying
//! `message`/`control` to session, user, room and call recipients, and the
//! server API's room requests (invite, disinvite, update, delete,
//! participants, incall, message). All of it runs inside the hub actor.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use metrics::counter;
use serde_json::value::RawValue;

use super::api::{ApiError, RoomRequestBody};
use super::backend::Backend;
use super::errors::ClientError;
use super::hub::{Cmd, End, ErrorBody, JoinOk, Room, State, error_frame};
use super::wire::{self, Raw, Relay, RoomRequest};

impl State {
    pub(super) fn on_room(&mut self, sid: u64, id: Option<String>, req: RoomRequest) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let Some(conn) = s.conn else {
            return;
        };
        if req.roomid.is_empty() {
            if s.room.is_some() {
                self.leave_room(sid, true, true);
                let reply = wire::RoomReply {
                    roomid: "",
                    properties: None,
                };
                self.reply(conn, wire::frame(id.as_deref(), "room", Some(&reply)));
            }
            return;
        }
        if s.room.as_deref() == Some(req.roomid.as_str()) {
            let properties = self
                .rooms
                .get(&(s.backend.id.clone(), req.roomid.clone()))
                .and_then(|r| r.properties.as_deref());
            let details = serde_json::json!({
                "room": wire::RoomReply { roomid: &req.roomid, properties }
            });
            let details = RawValue::from_string(details.to_string()).ok();
            let frame = error_frame(
                id.as_deref(),
                &ClientError::AlreadyJoined,
                details.as_deref(),
            );
            self.reply(conn, frame);
            return;
        }
        let body = serde_json::json!({
            "type": "room",
            "room": {
                "version": "1.0",
                "roomid": req.roomid,
                "userid": s.userid,
                "sessionid": req.sessionid,
            }
        })
        .to_string();
        let client = self.client.clone();
        let backend = s.backend.clone();
        let base = s.base.clone();
        self.spawn_reporting(async move {
            let result = match client.call(&backend, &base, body.into_bytes()).await {
                Err(e) => Err(ClientError::Internal(e.to_string())),
                Ok(data) => parse_join(&data),
            };
            Some(Cmd::Joined {
                sid,
                id,
                roomid: req.roomid,
                nc_session: req.sessionid,
                result,
            })
        });
    }

    pub(super) fn on_joined(
        &mut self,
        sid: u64,
        id: Option<String>,
        roomid: String,
        nc_session: String,
        result: Result<JoinOk, ClientError>,
    ) {
        let Some(s) = self.sessions.get(&sid) else {
            // Gone while Nextcloud was asked: undo the join there.
            return;
        };
        let conn = s.conn;
        let backend = s.backend.clone();
        let ok = match result {
            Ok(ok) => ok,
            Err(e) => {
                let frame = error_frame(id.as_deref(), &e, None);
                match conn {
                    Some(c) => self.reply(c, frame),
                    None => self.deliver(sid, frame),
                }
                return;
            }
        };
        // One signaling session per Nextcloud session: the older one goes.
        if !nc_session.is_empty()
            && let Some(&other) = self.by_nc.get(&(backend.id.clone(), nc_session.clone()))
            && other != sid
        {
            self.deliver(other, wire::bye(None, Some("room_session_reconnected")));
            self.end_session(other, End::Duplicate);
        }
        if self.sessions.get(&sid).is_some_and(|s| s.room.is_some()) {
            self.leave_room(sid, true, true);
        }
        let key = (backend.id.clone(), roomid.clone());
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            members: Vec::new(),
            properties: None,
        });
        if ok.properties.is_some() {
            room.properties = ok.properties;
        }
        let others: Vec<u64> = room.members.clone();
        room.members.push(sid);
        let properties = room.properties.clone();
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.room = Some(roomid.clone());
            s.nc_session = nc_session.clone();
            s.permissions = ok.permissions;
            s.in_call = 0;
        }
        if !nc_session.is_empty() {
            self.by_nc.insert((backend.id.clone(), nc_session), sid);
        }
        let reply = wire::RoomReply {
            roomid: &roomid,
            properties: properties.as_deref(),
        };
        self.deliver(sid, wire::frame(id.as_deref(), "room", Some(&reply)));
        // The joiner learns of everybody already there (first, as the original
        // does), then everybody in the room, the joiner too, of the joiner.
        if !others.is_empty() {
            let present = self.join_event(&others);
            self.deliver(sid, present);
        }
        let joined = self.join_event(&[sid]);
        for m in others.iter().copied().chain(std::iter::once(sid)) {
            self.deliver(m, joined.clone());
        }
    }

    fn join_event(&self, sids: &[u64]) -> bytes::Bytes {
        let entries: Vec<wire::JoinEntry<'_>> = sids
            .iter()
            .filter_map(|sid| self.sessions.get(sid))
            .map(|s| wire::JoinEntry {
                sessionid: &s.public,
                userid: &s.userid,
                features: &s.features,
                user: s.user.as_deref(),
                roomsessionid: &s.nc_session,
            })
            .collect();
        wire::event("room", "join", &entries)
    }

    /// Takes session `sid` out of its room: the others get a `leave` event
    /// (if `event`), Nextcloud a `leave` request (if `tell_backend`).
    pub(super) fn leave_room(&mut self, sid: u64, tell_backend: bool, event: bool) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(roomid) = s.room.take() else {
            return;
        };
        s.in_call = 0;
        let nc_session = std::mem::take(&mut s.nc_session);
        let public = s.public.clone();
        let backend = s.backend.clone();
        let base = s.base.clone();
        let userid = s.userid.clone();
        let key = (backend.id.clone(), roomid.clone());
        let mut others = Vec::new();
        if let Some(room) = self.rooms.get_mut(&key) {
            room.members.retain(|m| *m != sid);
            others = room.members.clone();
            if room.members.is_empty() {
                self.rooms.remove(&key);
            }
        }
        if event {
            let left = wire::event("room", "leave", &[&*public]);
            for o in others {
                self.deliver(o, left.clone());
            }
        }
        let nc_key = (backend.id.clone(), nc_session.clone());
        if self.by_nc.get(&nc_key) == Some(&sid) {
            self.by_nc.remove(&nc_key);
        }
        if tell_backend {
            let body = serde_json::json!({
                "type": "room",
                "room": {
                    "version": "1.0",
                    "roomid": roomid,
                    "userid": userid,
                    "sessionid": nc_session,
                    "action": "leave",
                }
            })
            .to_string();
            let client = self.client.clone();
            self.spawn_reporting(async move {
                // The reply is ignored, as the original does; failures are logged by the client.
                let _ = client.call(&backend, &base, body.into_bytes()).await;
                None
            });
        }
    }

    /// Relays a `message` or `control` from session `sid`.
    pub(super) fn relay(&mut self, sid: u64, kind: &'static str, r: Relay) {
        let (Some(rec), Some(data)) = (r.recipient, r.data) else {
            return;
        };
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let backend_id = s.backend.id.clone();
        let targets: Vec<u64> = match rec.kind.as_str() {
            "session" => self
                .by_public
                .get(rec.sessionid.as_str())
                .copied()
                .filter(|t| {
                    *t != sid
                        && self
                            .sessions
                            .get(t)
                            .is_some_and(|t| t.backend.id == backend_id)
                })
                .into_iter()
                .collect(),
            "user" => self
                .by_user
                .get(&(backend_id.clone(), rec.userid.clone()))
                .map(|set| set.iter().copied().filter(|t| *t != sid).collect())
                .unwrap_or_default(),
            "room" | "call" => {
                let Some(roomid) = s.room.clone() else {
                    return;
                };
                let call_only = rec.kind == "call";
                self.rooms
                    .get(&(backend_id.clone(), roomid))
                    .map(|room| {
                        room.members
                            .iter()
                            .copied()
                            .filter(|t| *t != sid)
                            .filter(|t| {
                                !call_only
                                    || self.sessions.get(t).is_some_and(|s| s.in_call & 1 != 0)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => return,
        };
        if targets.is_empty() {
            return;
        }
        let delivery = wire::Delivery {
            sender: wire::Sender {
                kind: &rec.kind,
                sessionid: &s.public,
                userid: &s.userid,
            },
            data: &data,
        };
        let frame = wire::frame(None, kind, Some(&delivery));
        let n = targets.len() as u64;
        for t in targets {
            self.deliver(t, frame.clone());
        }
        self.stats.relayed.fetch_add(n, Ordering::Relaxed);
        counter!("switchboard_talk_relayed_total", "kind" => kind).increment(n);
    }

    /// Sessions of `userids` on `backend`.
    fn sessions_of(&self, backend: &Backend, userids: &[String]) -> Vec<u64> {
        userids
            .iter()
            .filter_map(|u| self.by_user.get(&(backend.id.clone(), u.clone())))
            .flat_map(|set| set.iter().copied())
            .collect()
    }

    fn members(&self, backend: &Backend, roomid: &str) -> Vec<u64> {
        self.rooms
            .get(&(backend.id.clone(), roomid.to_owned()))
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    fn roomlist(&mut self, sids: Vec<u64>, kind: &str, body: &serde_json::Value) {
        let frame = wire::event("roomlist", kind, body);
        for s in sids {
            self.deliver(s, frame.clone());
        }
    }

    /// `update` to the users of `all` that are not in `notified`.
    fn roomlist_update(
        &mut self,
        backend: &Backend,
        roomid: &str,
        notified: &[String],
        all: &[String],
        properties: Option<&Raw>,
    ) {
        let rest: Vec<String> = all
            .iter()
            .filter(|u| !notified.contains(u))
            .cloned()
            .collect();
        let sids = self.sessions_of(backend, &rest);
        let body = serde_json::json!({ "roomid": roomid, "properties": properties });
        self.roomlist(sids, "update", &body);
    }

    /// Carries out one signed request of the server API.
    pub(super) fn backend_request(
        &mut self,
        backend: &Arc<Backend>,
        roomid: &str,
        req: RoomRequestBody,
    ) -> Result<(), ApiError> {
        match req.kind.as_str() {
            "invite" => {
                let r = req.invite.unwrap_or_default();
                let sids = self.sessions_of(backend, &r.userids);
                let body = serde_json::json!({ "roomid": roomid, "properties": r.properties });
                self.roomlist(sids, "invite", &body);
                self.roomlist_update(
                    backend,
                    roomid,
                    &r.userids,
                    &r.alluserids,
                    r.properties.as_ref(),
                );
            }
            "disinvite" => {
                let r = req.disinvite.unwrap_or_default();
                let mut sids = self.sessions_of(backend, &r.userids);
                for nc in r.sessionids.iter().filter(|nc| nc.as_str() != "0") {
                    if let Some(&sid) = self.by_nc.get(&(backend.id.clone(), nc.clone())) {
                        sids.push(sid);
                    }
                }
                sids.sort_unstable();
                sids.dedup();
                let body = serde_json::json!({ "roomid": roomid, "reason": "disinvited" });
                self.roomlist(sids.clone(), "disinvite", &body);
                for sid in sids {
                    if self
                        .sessions
                        .get(&sid)
                        .is_some_and(|s| s.room.as_deref() == Some(roomid))
                    {
                        self.end_session(sid, End::Disinvited);
                    }
                }
                self.roomlist_update(
                    backend,
                    roomid,
                    &r.userids,
                    &r.alluserids,
                    r.properties.as_ref(),
                );
            }
            "update" => {
                let r = req.update.unwrap_or_default();
                let key = (backend.id.clone(), roomid.to_owned());
                if let Some(room) = self.rooms.get_mut(&key) {
                    room.properties = r.properties.clone();
                    let members = room.members.clone();
                    let reply = wire::RoomReply {
                        roomid,
                        properties: r.properties.as_deref(),
                    };
                    let frame = wire::frame(None, "room", Some(&reply));
                    for m in members {
                        self.deliver(m, frame.clone());
                    }
                }
                self.roomlist_update(backend, roomid, &[], &r.userids, r.properties.as_ref());
            }
            "delete" => {
                let r = req.delete.unwrap_or_default();
                let gone = wire::frame(
                    None,
                    "room",
                    Some(&wire::RoomReply {
                        roomid: "",
                        properties: None,
                    }),
                );
                for m in self.members(backend, roomid) {
                    self.deliver(m, gone.clone());
                    self.leave_room(m, false, false);
                }
                self.rooms.remove(&(backend.id.clone(), roomid.to_owned()));
                let sids = self.sessions_of(backend, &r.userids);
                let body = serde_json::json!({ "roomid": roomid, "reason": "deleted" });
                self.roomlist(sids, "disinvite", &body);
            }
            "participants" => {
                let r = req.participants.unwrap_or_default();
                let users = self.map_users(backend, r.users);
                let body = serde_json::json!({ "roomid": roomid, "users": users });
                self.send_to_room(backend, roomid, "participants", "update", &body);
            }
            "incall" => {
                let r = req.incall.unwrap_or_default();
                if r.all {
                    for m in self.members(backend, roomid) {
                        if let Some(s) = self.sessions.get_mut(&m) {
                            s.in_call = r.incall;
                        }
                    }
                    let body =
                        serde_json::json!({ "roomid": roomid, "incall": r.incall, "all": true });
                    self.send_to_room(backend, roomid, "participants", "update", &body);
                } else {
                    for c in &r.changed {
                        let nc = c.get("sessionId").and_then(|v| v.as_str()).unwrap_or("");
                        let flags = c
                            .get("inCall")
                            .and_then(serde_json::Value::as_i64)
                            .unwrap_or(0);
                        if let Some(&sid) = self.by_nc.get(&(backend.id.clone(), nc.to_owned()))
                            && let Some(s) = self.sessions.get_mut(&sid)
                        {
                            s.in_call = flags;
                        }
                    }
                    let users = self.map_users(backend, r.users);
                    let body = serde_json::json!({ "roomid": roomid, "users": users });
                    self.send_to_room(backend, roomid, "participants", "update", &body);
                }
            }
            "message" => {
                let r = req.message.unwrap_or_default();
                let body = serde_json::json!({ "roomid": roomid, "data": r.data });
                self.send_to_room(backend, roomid, "room", "message", &body);
            }
            other => return Err(ApiError::Unsupported(other.to_owned())),
        }
        Ok(())
    }

    fn send_to_room(
        &mut self,
        backend: &Backend,
        roomid: &str,
        target: &str,
        kind: &str,
        body: &serde_json::Value,
    ) {
        let frame = wire::event(target, kind, body);
        for m in self.members(backend, roomid) {
            self.deliver(m, frame.clone());
        }
    }

    /// Participant entries with Nextcloud session ids replaced by signaling
    /// ids (entries that map to no session here are left out) and without
    /// `permissions`.
    fn map_users(
        &self,
        backend: &Backend,
        users: Vec<serde_json::Value>,
    ) -> Vec<serde_json::Value> {
        users
            .into_iter()
            .filter_map(|mut u| {
                let obj = u.as_object_mut()?;
                let nc = obj.get("sessionId")?.as_str()?.to_owned();
                if nc == "0" {
                    return None;
                }
                let sid = self.by_nc.get(&(backend.id.clone(), nc))?;
                let public = self.sessions.get(sid)?.public.clone();
                obj.remove("permissions");
                obj.insert("sessionId".into(), serde_json::Value::from(&*public));
                Some(u)
            })
            .collect()
    }
}

fn parse_join(data: &RawValue) -> Result<JoinOk, ClientError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(default)]
        room: Option<RoomBody>,
        #[serde(default)]
        error: Option<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct RoomBody {
        #[serde(default)]
        properties: Option<Raw>,
        #[serde(default)]
        permissions: Option<Vec<String>>,
    }
    let reply: Reply = serde_json::from_str(data.get()).map_err(|_| ClientError::RoomJoinFailed)?;
    match (reply.kind.as_str(), reply.room, reply.error) {
        ("room", Some(r), _) => Ok(JoinOk {
            properties: r.properties,
            permissions: r.permissions.unwrap_or_default(),
        }),
        ("error", _, Some(e)) => Err(e.into()),
        _ => Err(ClientError::RoomJoinFailed),
    }
}
