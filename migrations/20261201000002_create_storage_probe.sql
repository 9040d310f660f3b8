-- Readiness proves that a write would succeed now by committing one: this is the row it writes.
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);

INSERT INTO storage_probe (id, checked_at) VALUES (1, 0);
