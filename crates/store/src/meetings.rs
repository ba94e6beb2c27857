//! The meetings archive on SQL: [`MeetingStore`] and [`MeetingAdmin`] for
//! [`SqlStore`], on either of two schemas of the same shape.
//!
//! - **Native** ([`MeetingSchema::Native`]): Switchboard's own tables
//!   (`switchboard_meeting*`, created by this crate's migrations on SQLite or
//!   PostgreSQL).
//! - **pgeu-system** ([`MeetingSchema::Pgeu`]): pgeu-system's own Django
//!   tables (`membership_meeting`, `membership_member`,
//!   `membership_membermeetingkey`, `membership_meeting_meetingadmins`,
//!   `membership_meetingmessagelog`), read and written but never created or
//!   altered; the polls and votes, which pgeu-system has no table for, live in
//!   the schema `switchboard_meetings`, created by the `pgeu` migrations.
//!
//! Column names are pgeu-system's in both, so every query is written once with
//! the table names filled in when the store opens. Ids are read through
//! `CAST(… AS BIGINT)` because pgeu-system's are 32-bit `serial`s.

use sqlx::{AssertSqlSafe, Decode, Encode, Executor, IntoArguments, Type};
use switchboard_core::store::meetings::{
    KeyId, LogLine, MAX_POLL_ANSWERS, MeetingId, MeetingState, MemberId, MemberKey, NewLine,
    PollEnd, PollRecord, StoredLine,
};
use switchboard_core::store::{MeetingAdmin, MeetingStore, StoreError, StoreFuture};

use crate::sql::{Dialect, SqlStore};

/// Which tables hold the meetings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingSchema {
    /// Switchboard's own tables.
    Native,
    /// pgeu-system's tables, with polls in the `switchboard_meetings` schema.
    Pgeu,
}

/// The schema pgeu mode keeps its own tables (and its migration record) in.
pub const PGEU_OWN_SCHEMA: &str = "switchboard_meetings";

/// Most lines one INSERT statement carries; longer batches take several
/// statements in the same transaction.
const LINES_PER_STATEMENT: usize = 64;

/// The table names and the dialect's expressions, fixed when a store opens.
#[derive(Debug, Clone)]
pub(crate) struct Queries {
    schema: MeetingSchema,
    meeting: &'static str,
    member: &'static str,
    key: &'static str,
    admin: &'static str,
    log: &'static str,
    poll: &'static str,
    vote: &'static str,
    writer: &'static str,
    now: &'static str,
    time_of_t: String,
    date_of_t: String,
    time_of_lt: String,
    date_of_lt: String,
}

impl Queries {
    pub(crate) fn new<D: Dialect>(schema: MeetingSchema) -> Queries {
        let (meeting, member, key, admin, log, poll, vote, writer) = match schema {
            MeetingSchema::Native => (
                "switchboard_meeting",
                "switchboard_meeting_member",
                "switchboard_meeting_key",
                "switchboard_meeting_admin",
                "switchboard_meeting_log",
                "switchboard_meeting_poll",
                "switchboard_meeting_vote",
                "switchboard_meeting_writer",
            ),
            MeetingSchema::Pgeu => (
                "membership_meeting",
                "membership_member",
                "membership_membermeetingkey",
                "membership_meeting_meetingadmins",
                "membership_meetingmessagelog",
                "switchboard_meetings.poll",
                "switchboard_meetings.vote",
                "switchboard_meetings.writer",
            ),
        };
        Queries {
            schema,
            meeting,
            member,
            key,
            admin,
            log,
            poll,
            vote,
            writer,
            now: D::NOW,
            time_of_t: D::time_of("t"),
            date_of_t: D::date_of("t"),
            time_of_lt: D::time_of("l.t"),
            date_of_lt: D::date_of("l.t"),
        }
    }

    fn admin_only(&self, op: &'static str) -> Result<(), StoreError> {
        match self.schema {
            MeetingSchema::Native => Ok(()),
            MeetingSchema::Pgeu => Err(StoreError::Backend {
                op,
                message: "meetings are set up in pgeu-system itself, not through Switchboard"
                    .to_owned(),
            }),
        }
    }
}

fn sql(s: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(s)
}

type PollRow = (
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

// The `where` list is the one in sql.rs (kept equal).
impl<D: Dialect> MeetingStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    i64: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    bool: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    String: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<i64>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<String>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    usize: sqlx::ColumnIndex<D::Row>,
{
    fn meeting_state(&self, meeting: MeetingId) -> StoreFuture<'_, Option<MeetingState>> {
        Box::pin(async move {
            let q = &self.meetings;
            let state: Option<i64> = self
                .run(
                    "meeting_state",
                    sqlx::query_scalar(sql(format!(
                        "SELECT CAST(state AS BIGINT) FROM {} WHERE id = $1",
                        q.meeting
                    )))
                    .bind(meeting)
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(state.and_then(MeetingState::from_i64))
        })
    }

    fn set_meeting_state(&self, meeting: MeetingId, state: MeetingState) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let q = &self.meetings;
            let changed: Option<bool> = self
                .run(
                    "set_meeting_state",
                    sqlx::query_scalar(sql(format!(
                        "UPDATE {} SET state = $2 WHERE id = $1 AND state <> $2 RETURNING TRUE",
                        q.meeting
                    )))
                    .bind(meeting)
                    .bind(state.as_i64())
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(changed.is_some())
        })
    }

    fn member_by_key<'a>(
        &'a self,
        meeting: MeetingId,
        key: &'a str,
    ) -> StoreFuture<'a, Option<MemberKey>> {
        Box::pin(async move {
            let q = &self.meetings;
            let row: Option<(i64, i64, String, bool, bool, Option<String>)> = self
                .run(
                    "member_by_key",
                    sqlx::query_as(sql(format!(
                        "SELECT CAST(mk.id AS BIGINT), CAST(m.user_id AS BIGINT), m.fullname, \
                         EXISTS (SELECT 1 FROM {admin} a WHERE a.meeting_id = $1 AND a.member_id = m.user_id), \
                         mk.allowrejoin, mk.proxyname \
                         FROM {member} m JOIN {key} mk ON m.user_id = mk.member_id \
                         WHERE mk.meeting_id = $1 AND mk.key = $2",
                        admin = q.admin,
                        member = q.member,
                        key = q.key
                    )))
                    .bind(meeting)
                    .bind(key)
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(row.map(
                |(key_id, member_id, name, admin, allow_rejoin, proxy_name)| MemberKey {
                    key_id,
                    member_id,
                    name,
                    admin,
                    allow_rejoin,
                    proxy_name,
                },
            ))
        })
    }

    fn set_allow_rejoin(
        &self,
        meeting: MeetingId,
        key_id: KeyId,
        allow: bool,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let q = &self.meetings;
            self.run(
                "set_allow_rejoin",
                sqlx::query(sql(format!(
                    "UPDATE {} SET allowrejoin = $3 WHERE meeting_id = $1 AND id = $2 AND allowrejoin <> $3",
                    q.key
                )))
                .bind(meeting)
                .bind(key_id)
                .bind(allow)
                .execute(&self.pool),
            )
            .await
            .map(drop)
        })
    }

    fn take_writer(&self, meeting: MeetingId) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let text = format!(
                "INSERT INTO {} (meeting_id, epoch) VALUES ($1, 1) \
                 ON CONFLICT (meeting_id) DO UPDATE SET epoch = {}.epoch + 1 RETURNING epoch",
                self.meetings.writer, self.meetings.writer
            );
            self.run(
                "take_writer",
                sqlx::query_scalar::<D, i64>(sql(text))
                    .bind(meeting)
                    .fetch_one(&self.pool),
            )
            .await
        })
    }

    fn append_lines<'a>(
        &'a self,
        meeting: MeetingId,
        writer: i64,
        lines: &'a [NewLine],
    ) -> StoreFuture<'a, Vec<StoredLine>> {
        Box::pin(async move {
            if lines.is_empty() {
                return Ok(Vec::new());
            }
            let q = &self.meetings;
            // The fence: the writer row is updated (and so locked until the
            // commit) only while it holds this writer's epoch, so an append and
            // a takeover never interleave, and a stale writer stores nothing.
            let fence = format!(
                "UPDATE {} SET epoch = epoch WHERE meeting_id = $1 AND epoch = $2 RETURNING epoch",
                q.writer
            );
            let work = async {
                let mut tx = self.pool.begin().await?;
                let held: Option<i64> = sqlx::query_scalar::<D, i64>(sql(fence))
                    .bind(meeting)
                    .bind(writer)
                    .fetch_optional(&mut *tx)
                    .await?;
                if held.is_none() {
                    return Ok(None);
                }
                let mut out: Vec<StoredLine> = Vec::with_capacity(lines.len());
                for chunk in lines.chunks(LINES_PER_STATEMENT) {
                    let mut text = format!(
                        "INSERT INTO {} (meeting_id, t, sender_id, message) VALUES ",
                        q.log
                    );
                    for i in 0..chunk.len() {
                        if i > 0 {
                            text.push_str(", ");
                        }
                        let n = 2 + 2 * i;
                        text.push_str(&format!("($1, {}, ${n}, ${})", q.now, n + 1));
                    }
                    text.push_str(&format!(
                        " RETURNING CAST(id AS BIGINT), {}, {}",
                        q.time_of_t, q.date_of_t
                    ));
                    let mut query =
                        sqlx::query_as::<D, (i64, String, String)>(sql(text)).bind(meeting);
                    for line in chunk {
                        query = query.bind(line.sender).bind(line.text.as_str());
                    }
                    let mut rows = query.fetch_all(&mut *tx).await?;
                    // Ids are drawn in VALUES order; RETURNING's row order is not
                    // promised, so order by id to pair them with the lines.
                    rows.sort_by_key(|r| r.0);
                    out.extend(rows.into_iter().map(|(id, time, date)| StoredLine {
                        id,
                        time,
                        date,
                    }));
                }
                tx.commit().await?;
                Ok(Some(out))
            };
            let out = self
                .run("append_lines", work)
                .await?
                .ok_or(StoreError::Fenced { op: "append_lines" })?;
            if out.len() != lines.len() {
                return Err(StoreError::Backend {
                    op: "append_lines",
                    message: format!("stored {} lines of {}", out.len(), lines.len()),
                });
            }
            Ok(out)
        })
    }

    fn lines_after(&self, meeting: MeetingId, after: i64) -> StoreFuture<'_, Vec<LogLine>> {
        Box::pin(async move {
            let q = &self.meetings;
            type Row = (
                i64,
                String,
                String,
                Option<i64>,
                Option<i64>,
                String,
                String,
            );
            let rows: Vec<Row> = self
                .run(
                    "lines_after",
                    sqlx::query_as(sql(format!(
                        "SELECT CAST(l.id AS BIGINT), {time}, {date}, CAST(l.sender_id AS BIGINT), \
                         CAST(mk.id AS BIGINT), COALESCE(m.fullname, ''), l.message \
                         FROM {log} l \
                         LEFT JOIN {member} m ON m.user_id = l.sender_id \
                         LEFT JOIN {key} mk ON mk.member_id = l.sender_id AND mk.meeting_id = $1 \
                         WHERE l.meeting_id = $1 AND l.id > $2 ORDER BY l.id",
                        time = q.time_of_lt,
                        date = q.date_of_lt,
                        log = q.log,
                        member = q.member,
                        key = q.key
                    )))
                    .bind(meeting)
                    .bind(after)
                    .fetch_all(&self.pool),
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, time, date, sender, sender_key, sender_name, text)| LogLine {
                        stored: StoredLine { id, time, date },
                        sender,
                        sender_key,
                        sender_name,
                        text,
                    },
                )
                .collect())
        })
    }

    fn open_poll<'a>(
        &'a self,
        meeting: MeetingId,
        question: &'a str,
        answers: &'a [String],
        closes_at_ms: i64,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            if answers.len() > MAX_POLL_ANSWERS {
                return Err(StoreError::Backend {
                    op: "open_poll",
                    message: format!("more than {MAX_POLL_ANSWERS} answers"),
                });
            }
            let q = &self.meetings;
            let mut query = sqlx::query_scalar::<D, i64>(sql(format!(
                "INSERT INTO {} (meeting_id, question, answer_count, answer0, answer1, answer2, \
                 answer3, answer4, closes_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING CAST(id AS BIGINT)",
                q.poll
            )))
            .bind(meeting)
            .bind(question)
            .bind(answers.len() as i64);
            for i in 0..MAX_POLL_ANSWERS {
                query = query.bind(answers.get(i).cloned());
            }
            self.run("open_poll", query.bind(closes_at_ms).fetch_one(&self.pool))
                .await
        })
    }

    fn record_vote(&self, poll: i64, key_id: KeyId, answer: usize) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let q = &self.meetings;
            self.run(
                "record_vote",
                sqlx::query(sql(format!(
                    "INSERT INTO {} (poll_id, key_id, answer) VALUES ($1, $2, $3) \
                     ON CONFLICT (poll_id, key_id) DO UPDATE SET answer = excluded.answer",
                    q.vote
                )))
                .bind(poll)
                .bind(key_id)
                .bind(answer as i64)
                .execute(&self.pool),
            )
            .await
            .map(drop)
        })
    }

    fn end_poll(&self, poll: i64, how: PollEnd) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let q = &self.meetings;
            let how = match how {
                PollEnd::Completed => "completed",
                PollEnd::Aborted => "aborted",
            };
            let ended: Option<bool> = self
                .run(
                    "end_poll",
                    sqlx::query_scalar(sql(format!(
                        "UPDATE {} SET ended = $2 WHERE id = $1 AND ended IS NULL RETURNING TRUE",
                        q.poll
                    )))
                    .bind(poll)
                    .bind(how)
                    .fetch_optional(&self.pool),
                )
                .await?;
            Ok(ended.is_some())
        })
    }

    fn active_poll(&self, meeting: MeetingId) -> StoreFuture<'_, Option<PollRecord>> {
        Box::pin(async move {
            let q = &self.meetings;
            let row: Option<PollRow> = self
                .run(
                    "active_poll",
                    sqlx::query_as(sql(format!(
                        "SELECT CAST(id AS BIGINT), question, CAST(answer_count AS BIGINT), answer0, \
                         answer1, answer2, answer3, answer4, CAST(closes_at_ms AS BIGINT) \
                         FROM {} WHERE meeting_id = $1 AND ended IS NULL",
                        q.poll
                    )))
                    .bind(meeting)
                    .fetch_optional(&self.pool),
                )
                .await?;
            let Some((id, question, count, a0, a1, a2, a3, a4, closes_at_ms)) = row else {
                return Ok(None);
            };
            let votes: Vec<(i64, i64)> = self
                .run(
                    "active_poll",
                    sqlx::query_as(sql(format!(
                        "SELECT CAST(key_id AS BIGINT), CAST(answer AS BIGINT) FROM {} \
                         WHERE poll_id = $1 ORDER BY key_id",
                        q.vote
                    )))
                    .bind(id)
                    .fetch_all(&self.pool),
                )
                .await?;
            let answers: Vec<String> = [a0, a1, a2, a3, a4]
                .into_iter()
                .take(usize::try_from(count).unwrap_or(0))
                .map(Option::unwrap_or_default)
                .collect();
            Ok(Some(PollRecord {
                id,
                question,
                answers,
                closes_at_ms,
                votes: votes
                    .into_iter()
                    .filter_map(|(k, a)| Some((k, usize::try_from(a).ok()?)))
                    .collect(),
            }))
        })
    }
}

impl<D: Dialect> MeetingAdmin for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    i64: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    bool: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    String: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<i64>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    Option<String>: Type<D> + for<'r> Decode<'r, D> + for<'q> Encode<'q, D>,
    usize: sqlx::ColumnIndex<D::Row>,
{
    fn create_meeting<'a>(&'a self, name: &'a str) -> StoreFuture<'a, MeetingId> {
        Box::pin(async move {
            let q = &self.meetings;
            q.admin_only("create_meeting")?;
            self.run(
                "create_meeting",
                sqlx::query_scalar(sql(format!(
                    "INSERT INTO {} (name, state) VALUES ($1, 0) RETURNING CAST(id AS BIGINT)",
                    q.meeting
                )))
                .bind(name)
                .fetch_one(&self.pool),
            )
            .await
        })
    }

    fn create_member<'a>(&'a self, full_name: &'a str) -> StoreFuture<'a, MemberId> {
        Box::pin(async move {
            let q = &self.meetings;
            q.admin_only("create_member")?;
            self.run(
                "create_member",
                sqlx::query_scalar(sql(format!(
                    "INSERT INTO {} (fullname) VALUES ($1) RETURNING CAST(user_id AS BIGINT)",
                    q.member
                )))
                .bind(full_name)
                .fetch_one(&self.pool),
            )
            .await
        })
    }

    fn issue_key<'a>(
        &'a self,
        meeting: MeetingId,
        member: MemberId,
        key: &'a str,
        proxy_name: Option<&'a str>,
    ) -> StoreFuture<'a, KeyId> {
        Box::pin(async move {
            let q = &self.meetings;
            q.admin_only("issue_key")?;
            self.run(
                "issue_key",
                sqlx::query_scalar(sql(format!(
                    "INSERT INTO {} (key, meeting_id, member_id, proxyname, allowrejoin) \
                     VALUES ($1, $2, $3, $4, FALSE) \
                     ON CONFLICT (member_id, meeting_id) \
                     DO UPDATE SET key = excluded.key, proxyname = excluded.proxyname \
                     RETURNING CAST(id AS BIGINT)",
                    q.key
                )))
                .bind(key)
                .bind(meeting)
                .bind(member)
                .bind(proxy_name.map(str::to_owned))
                .fetch_one(&self.pool),
            )
            .await
        })
    }

    fn add_admin(&self, meeting: MeetingId, member: MemberId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let q = &self.meetings;
            q.admin_only("add_admin")?;
            self.run(
                "add_admin",
                sqlx::query(sql(format!(
                    "INSERT INTO {} (meeting_id, member_id) VALUES ($1, $2) \
                     ON CONFLICT (meeting_id, member_id) DO NOTHING",
                    q.admin
                )))
                .bind(meeting)
                .bind(member)
                .execute(&self.pool),
            )
            .await
            .map(drop)
        })
    }
}
