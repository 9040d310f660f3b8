-- The ops console's logins (issue 14): one row per session, found by the SHA-256 of the id in
-- the `bridge_session` cookie (the id itself is never stored), with its CSRF token. In the
-- database so sessions survive a restart and work across replicas; expired rows are deleted at
-- each login.
CREATE TABLE console_sessions (
    id_hash    BLOB    PRIMARY KEY,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
