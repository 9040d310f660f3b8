-- no-transaction
-- The outbox's state tests without lists of constants (issue 18). SQLite evaluates
-- `state IN ('a', 'b', 'c')` (three constants or more) by filling a temporary B-tree, once per
-- statement run: the CHECK on `state`, and each partial index's WHERE for the old and the new
-- row of an update. Recording one attempt's outcome built seven of them, the claim eight, and
-- each costs more than the row update itself. The same tests written as comparisons joined by
-- OR cost a few instructions. Queries that use a partial index repeat its WHERE word for word.
--
-- `outbox_waiting` goes: the oldest waiting row is the least of three `outbox_state_received`
-- look-ups, and every webhook and delivery wrote one index fewer.
--
-- SQLite cannot change a CHECK in place, so the table is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter), its columns, indexes and triggers as
-- they were otherwise.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    source          TEXT    NOT NULL,
    event_id        TEXT,
    email           TEXT,
    crm_record      TEXT,
    claim_key       TEXT    GENERATED ALWAYS AS (coalesce(email, crm_record)) VIRTUAL,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state = 'queued' OR state = 'in_flight' OR state = 'retrying'
                           OR state = 'delivered' OR state = 'failed' OR state = 'cancelled'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    guest_id        TEXT,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    -- Set by an operator's retry: the retry budget (max_attempts, max_age) counts from here, so
    -- a retried row gets a fresh one while `attempts` stays the fencing token and the sign that
    -- an earlier attempt may have reached Tallyfy.
    retried_at      INTEGER,
    attempts_before_retry INTEGER NOT NULL DEFAULT 0,
    CHECK (email IS NOT NULL OR crm_record IS NOT NULL)
);

INSERT INTO outbox_new (id, source, event_id, email, crm_record, payload, state, attempts,
                        next_attempt_at, lease_until, guest_id, last_error, received_at,
                        updated_at, delivered_at, retried_at, attempts_before_retry)
SELECT id, source, event_id, email, crm_record, payload, state, attempts, next_attempt_at,
       lease_until, guest_id, last_error, received_at, updated_at, delivered_at, retried_at,
       attempts_before_retry
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

CREATE UNIQUE INDEX outbox_source_event ON outbox (source, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'in_flight';
-- Keys of rows attempted and not delivered (a cancelled row may have been attempted too): "is
-- this key in flight?" and, by email, "was it attempted before?". Queued rows stay out of it.
CREATE INDEX outbox_key_attempted ON outbox (claim_key)
    WHERE state = 'in_flight' OR state = 'retrying' OR state = 'failed' OR state = 'cancelled';
-- The admin list, newest first, one index per filter; SQLite appends the rowid (id), which
-- breaks ties in the keyset order (received_at, id).
CREATE INDEX outbox_received ON outbox (received_at);
CREATE INDEX outbox_state_received ON outbox (state, received_at);
CREATE INDEX outbox_source_received ON outbox (source, received_at);
CREATE INDEX outbox_email_received ON outbox (email, received_at) WHERE email IS NOT NULL;
-- Retention: end-state rows by when they ended.
CREATE INDEX outbox_ended ON outbox (state, updated_at)
    WHERE state = 'delivered' OR state = 'failed' OR state = 'cancelled';

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

COMMIT;
PRAGMA foreign_keys = ON;
