-- Pacing within Tallyfy's hourly guest-invite cap, org-wide and shared by every worker: each
-- create the bridge may send first spends one unit here, in a conditional insert that succeeds
-- only while the last window holds fewer spends than the cap (a sliding log, not a bucket, so
-- no rolling window ever holds more than the cap).
CREATE TABLE create_spends (
    id        INTEGER PRIMARY KEY,
    spent_at  INTEGER NOT NULL,
    -- The row whose attempt spent it (no foreign key: pruning that row keeps the spend).
    outbox_id INTEGER NOT NULL
);
CREATE INDEX create_spends_at ON create_spends (spent_at);

-- One row: the limit the delivery worker runs with (so /status of any process shows it) and
-- until when Tallyfy itself said its hourly cap is reached.
CREATE TABLE create_budget (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    max_creates     INTEGER NOT NULL DEFAULT 30,
    window_ms       INTEGER NOT NULL DEFAULT 3600000,
    exhausted_until INTEGER
);
INSERT INTO create_budget (id) VALUES (1);
