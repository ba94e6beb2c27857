//! pgeu-system's meetings tables in a test database ([`PgeuDb`]): the layout
//! the meetings service reads and writes in pgeu-system mode (Django's names
//! and types, from pgeu-system's membership migrations), and helpers that
//! insert what pgeu-system's web application would (meetings, members, keys,
//! admins).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::pg::PgTestDb;

/// The tables, as Django creates them (only what the meetings need; the real
/// `membership_member` and `auth_user` have more columns).
pub const DDL: &str = r#"
CREATE TABLE auth_user (id serial PRIMARY KEY, username varchar(150) NOT NULL UNIQUE);
CREATE TABLE membership_member (
    user_id integer PRIMARY KEY REFERENCES auth_user (id),
    fullname varchar(500) NOT NULL
);
CREATE TABLE membership_meeting (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL,
    dateandtime timestamptz NOT NULL DEFAULT now(),
    allmembers boolean NOT NULL DEFAULT true,
    meetingtype integer NOT NULL DEFAULT 1,
    state integer NOT NULL DEFAULT 0,
    botname varchar(50) NOT NULL DEFAULT ''
);
CREATE TABLE membership_meeting_meetingadmins (
    id serial PRIMARY KEY,
    meeting_id integer NOT NULL REFERENCES membership_meeting (id),
    member_id integer NOT NULL REFERENCES membership_member (user_id),
    UNIQUE (meeting_id, member_id)
);
CREATE TABLE membership_membermeetingkey (
    id serial PRIMARY KEY,
    key varchar(100) NOT NULL,
    meeting_id integer NOT NULL REFERENCES membership_meeting (id),
    member_id integer NOT NULL REFERENCES membership_member (user_id),
    proxyname varchar(200) NULL,
    proxyaccesskey varchar(100) NULL,
    allowrejoin boolean NOT NULL DEFAULT false,
    UNIQUE (member_id, meeting_id)
);
CREATE TABLE membership_meetingmessagelog (
    id serial PRIMARY KEY,
    t timestamptz NOT NULL,
    message text NOT NULL,
    meeting_id integer NOT NULL REFERENCES membership_meeting (id) ON DELETE CASCADE,
    sender_id integer NULL REFERENCES membership_member (user_id)
);
CREATE INDEX membership__meeting_84cc48_idx ON membership_meetingmessagelog (meeting_id, t);
"#;

/// A fresh test database holding pgeu-system's meetings tables.
#[derive(Debug)]
pub struct PgeuDb {
    db: PgTestDb,
    pool: PgPool,
}

impl PgeuDb {
    /// Creates the database and the tables; `None` (after the loud skip of
    /// [`PgTestDb::create`]) when PostgreSQL is not reachable.
    pub async fn create() -> Option<PgeuDb> {
        let db = PgTestDb::create().await?;
        let options = PgConnectOptions::from_str(db.url()).expect("test database URL");
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        sqlx::raw_sql(DDL)
            .execute(&pool)
            .await
            .expect("create pgeu-system's tables");
        Some(PgeuDb { db, pool })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// A pool on the database, for checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one SQL statement of the test's own (for example to break a table).
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts a meeting in `state`; returns its id.
    pub async fn meeting(&self, name: &str, state: i32) -> i64 {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO membership_meeting (name, state) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(state)
        .fetch_one(&self.pool)
        .await
        .expect("insert meeting");
        i64::from(id)
    }

    /// Inserts a user and its member record; returns the user id.
    pub async fn member(&self, full_name: &str) -> i64 {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO auth_user (username) VALUES ($1 || '-' || gen_random_uuid()) RETURNING id",
        )
        .bind(full_name)
        .fetch_one(&self.pool)
        .await
        .expect("insert user");
        sqlx::query("INSERT INTO membership_member (user_id, fullname) VALUES ($1, $2)")
            .bind(id)
            .bind(full_name)
            .execute(&self.pool)
            .await
            .expect("insert member");
        i64::from(id)
    }

    /// Gives `member` the key `key` to `meeting`; returns the key id.
    pub async fn key(&self, meeting: i64, member: i64, key: &str, proxy: Option<&str>) -> i64 {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO membership_membermeetingkey (key, meeting_id, member_id, proxyname) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(key)
        .bind(meeting as i32)
        .bind(member as i32)
        .bind(proxy)
        .fetch_one(&self.pool)
        .await
        .expect("insert key");
        i64::from(id)
    }

    /// Makes `member` an administrator of `meeting`.
    pub async fn admin(&self, meeting: i64, member: i64) {
        sqlx::query(
            "INSERT INTO membership_meeting_meetingadmins (meeting_id, member_id) VALUES ($1, $2)",
        )
        .bind(meeting as i32)
        .bind(member as i32)
        .execute(&self.pool)
        .await
        .expect("insert admin");
    }

    /// Sets a meeting's state, as pgeu-system's backend does (no NOTIFY).
    pub async fn set_state(&self, meeting: i64, state: i32) {
        sqlx::query("UPDATE membership_meeting SET state = $2 WHERE id = $1")
            .bind(meeting as i32)
            .bind(state)
            .execute(&self.pool)
            .await
            .expect("update meeting state");
    }

    /// A meeting's state as stored.
    pub async fn state(&self, meeting: i64) -> i32 {
        sqlx::query_scalar("SELECT state FROM membership_meeting WHERE id = $1")
            .bind(meeting as i32)
            .fetch_one(&self.pool)
            .await
            .expect("read meeting state")
    }

    /// Every log line of a meeting, by id: (id, sender user id, text).
    pub async fn log(&self, meeting: i64) -> Vec<(i64, Option<i64>, String)> {
        let rows: Vec<(i32, Option<i32>, String)> = sqlx::query_as(
            "SELECT id, sender_id, message FROM membership_meetingmessagelog \
             WHERE meeting_id = $1 ORDER BY id",
        )
        .bind(meeting as i32)
        .fetch_all(&self.pool)
        .await
        .expect("read the log");
        rows.into_iter()
            .map(|(id, s, m)| (i64::from(id), s.map(i64::from), m))
            .collect()
    }

    /// A key's `allowrejoin`.
    pub async fn allow_rejoin(&self, key_id: i64) -> bool {
        sqlx::query_scalar("SELECT allowrejoin FROM membership_membermeetingkey WHERE id = $1")
            .bind(key_id as i32)
            .fetch_one(&self.pool)
            .await
            .expect("read allowrejoin")
    }

    /// The tables of schema `public`, sorted (to prove nothing was added there).
    pub async fn public_tables(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .expect("list tables")
    }
}
