-- The outbox: one row per accepted contact event, never deleted. Times are Unix milliseconds.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    -- Which inbound format the event came in ("canonical", later one per CRM).
    source          TEXT    NOT NULL,
    -- The CRM's event id, used to drop retries of the same event; NULL when none was sent.
    event_id        TEXT,
    -- Normalised (trimmed, lowercased) email: the identity of the guest.
    email           TEXT    NOT NULL,
    -- The guest fields to send, as JSON, with the email as the CRM wrote it.
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'in_flight', 'retrying', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    guest_id        TEXT,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);

-- A CRM retry of one event finds the first row instead of adding a second.
CREATE UNIQUE INDEX outbox_source_event ON outbox (source, event_id) WHERE event_id IS NOT NULL;

-- "Oldest waiting event" for /status without scanning delivered rows.
CREATE INDEX outbox_waiting ON outbox (received_at)
    WHERE state IN ('queued', 'in_flight', 'retrying');
