-- Delivery: the guest ledger (what Tallyfy already has), the attempt log, and the indexes the
-- worker's claim needs so it stays cheap however many delivered rows accumulate.

-- email → Tallyfy guest id, per organisation. A hit completes a delivery without any API call.
CREATE TABLE guest_ledger (
    org_id     TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    guest_id   TEXT    NOT NULL,
    -- The outbox row whose delivery recorded it.
    outbox_id  INTEGER NOT NULL REFERENCES outbox (id),
    -- How the id was learned: "created", "found" (look-up) or "existing" (422 then look-up).
    learned_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, email)
) WITHOUT ROWID;

-- One row per delivery attempt (claim), written with the attempt's outcome.
CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id),
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    -- HTTP status of the Tallyfy answer that decided a failed attempt; NULL for deliveries
    -- and when no answer came back.
    http_status INTEGER,
    -- delivered | retry | rate_limited | paused | failed
    outcome     TEXT    NOT NULL,
    -- Short, redacted.
    error       TEXT
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id);

-- Due rows, in due order.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('queued', 'retrying');
-- Leases, to re-claim rows whose worker died.
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'in_flight';
-- Emails of rows attempted and not delivered: "is this email in flight?" (one delivery per
-- email at a time) and "was it attempted before?" (then look the guest up before creating it).
-- New (queued) rows stay out of it, so ingest writes no random index page per event.
CREATE INDEX outbox_email_attempted ON outbox (email)
    WHERE state IN ('in_flight', 'retrying', 'failed');

-- Org-wide rate limit (Tallyfy's 429) survives restarts, so a restart does not hammer the API.
ALTER TABLE worker_state ADD COLUMN rate_limited_until INTEGER;
