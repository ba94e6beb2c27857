-- The meetings archive (core::store::MeetingStore), native schema: the shape of
-- pgeu-system's tables (same column names), plus stored polls and votes.
-- AUTOINCREMENT: ids are never reused, so a client's "highest seen id" stays valid.
CREATE TABLE switchboard_meeting (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    state      INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE switchboard_meeting_member (
    user_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    fullname TEXT NOT NULL
);

CREATE TABLE switchboard_meeting_key (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,
    meeting_id  INTEGER NOT NULL REFERENCES switchboard_meeting (id) ON DELETE CASCADE,
    member_id   INTEGER NOT NULL REFERENCES switchboard_meeting_member (user_id),
    proxyname   TEXT,
    allowrejoin BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (member_id, meeting_id)
);
CREATE INDEX switchboard_meeting_key_lookup ON switchboard_meeting_key (meeting_id, key);

CREATE TABLE switchboard_meeting_admin (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES switchboard_meeting (id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES switchboard_meeting_member (user_id),
    UNIQUE (meeting_id, member_id)
);

CREATE TABLE switchboard_meeting_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES switchboard_meeting (id) ON DELETE CASCADE,
    t          TEXT NOT NULL,
    sender_id  INTEGER REFERENCES switchboard_meeting_member (user_id),
    message    TEXT NOT NULL
);
CREATE INDEX switchboard_meeting_log_replay ON switchboard_meeting_log (meeting_id, id);

CREATE TABLE switchboard_meeting_poll (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id   INTEGER NOT NULL REFERENCES switchboard_meeting (id) ON DELETE CASCADE,
    question     TEXT NOT NULL,
    answer_count INTEGER NOT NULL,
    answer0      TEXT,
    answer1      TEXT,
    answer2      TEXT,
    answer3      TEXT,
    answer4      TEXT,
    closes_at_ms INTEGER NOT NULL,
    ended        TEXT
);
-- At most one running poll per meeting.
CREATE UNIQUE INDEX switchboard_meeting_poll_running
    ON switchboard_meeting_poll (meeting_id) WHERE ended IS NULL;

CREATE TABLE switchboard_meeting_vote (
    poll_id INTEGER NOT NULL REFERENCES switchboard_meeting_poll (id) ON DELETE CASCADE,
    key_id  INTEGER NOT NULL,
    answer  INTEGER NOT NULL,
    PRIMARY KEY (poll_id, key_id)
);
