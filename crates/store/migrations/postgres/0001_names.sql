-- Registered names (core::store::NameStore). A name is registered once and
-- kept until an administrator removes it.
-- COLLATE "C": comparison is byte-for-byte whatever the database's locale.
CREATE TABLE switchboard_names (
    namespace  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
