-- One row naming this database. A marker file beside it keeps the same id, so the bridge can
-- tell its own database from an empty or foreign one put in its place.
CREATE TABLE database_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    database_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

INSERT INTO database_identity (id, database_id, created_at)
VALUES (1, lower(hex(randomblob(16))), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
