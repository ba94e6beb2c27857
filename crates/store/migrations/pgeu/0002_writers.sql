-- pgeu-system mode: which node may write a meeting's log. Each owner that takes a
-- meeting over raises the epoch; a log append carries its writer's epoch and is
-- refused once a newer one exists (a fencing token against a cut-off old owner).
CREATE TABLE switchboard_meetings.writer (
    meeting_id INTEGER PRIMARY KEY,
    epoch      BIGINT NOT NULL
);
