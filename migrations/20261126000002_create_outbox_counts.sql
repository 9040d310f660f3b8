-- Per-state row counts kept by triggers, so /status reads five rows instead of counting the
-- outbox (which grows without bound: rows are never deleted).
CREATE TABLE outbox_counts (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO outbox_counts (state)
VALUES ('queued'), ('in_flight'), ('retrying'), ('delivered'), ('failed');

INSERT OR REPLACE INTO outbox_counts (state, n)
SELECT state, count(*) FROM outbox GROUP BY state;

CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox
BEGIN
    UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER outbox_counts_update AFTER UPDATE OF state ON outbox
WHEN OLD.state IS NOT NEW.state
BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox
BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
END;
