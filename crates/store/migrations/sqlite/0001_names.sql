-- Registered names (core::store::NameStore). A name is registered once and
-- kept until an administrator removes it.
-- BINARY collation (the SQLite default): comparison is byte-for-byte.
CREATE TABLE switchboard_names (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
