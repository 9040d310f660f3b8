-- One row the delivery worker keeps current, read by /status.
CREATE TABLE worker_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    heartbeat_at      INTEGER,
    last_delivered_at INTEGER,
    -- Already redacted when written: no tokens, no full emails.
    last_error        TEXT,
    last_error_at     INTEGER,
    -- Why delivery is paused (e.g. Tallyfy refused the token); NULL while running.
    paused_reason     TEXT
);

INSERT INTO worker_state (id) VALUES (1);
