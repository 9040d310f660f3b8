-- no-transaction
-- Operations (issue 13): a `cancelled` end state and what a retry by an operator needs on the
-- outbox, indexes for the admin list's filters, refused CRM items, the admin audit trail,
-- retention's bookkeeping, and a guest ledger that no longer references outbox rows (rows are
-- pruned; the ledger never is). SQLite cannot change a CHECK or a foreign key in place, so both
-- tables are rebuilt (https://sqlite.org/lang_altertable.html#otheralter).
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
                    CHECK (state IN ('queued', 'in_flight', 'retrying', 'delivered', 'failed',
                                     'cancelled')),
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
                        updated_at, delivered_at)
SELECT id, source, event_id, email, crm_record, payload, state, attempts, next_attempt_at,
       lease_until, guest_id, last_error, received_at, updated_at, delivered_at
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

CREATE UNIQUE INDEX outbox_source_event ON outbox (source, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX outbox_waiting ON outbox (received_at)
    WHERE state IN ('queued', 'in_flight', 'retrying');
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'in_flight';
-- Keys of rows attempted and not delivered (a cancelled row may have been attempted too): "is
-- this key in flight?" and, by email, "was it attempted before?". Queued rows stay out of it.
CREATE INDEX outbox_key_attempted ON outbox (claim_key)
    WHERE state IN ('in_flight', 'retrying', 'failed', 'cancelled');
-- The admin list, newest first, one index per filter; SQLite appends the rowid (id), which
-- breaks ties in the keyset order (received_at, id).
CREATE INDEX outbox_received ON outbox (received_at);
CREATE INDEX outbox_state_received ON outbox (state, received_at);
CREATE INDEX outbox_source_received ON outbox (source, received_at);
CREATE INDEX outbox_email_received ON outbox (email, received_at) WHERE email IS NOT NULL;
-- Retention: end-state rows by when they ended.
CREATE INDEX outbox_ended ON outbox (state, updated_at)
    WHERE state IN ('delivered', 'failed', 'cancelled');

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

INSERT INTO outbox_counts (state, n) VALUES ('cancelled', 0);

-- The ledger keeps the id of the row that recorded it, as a plain number: that row may be
-- pruned, the entry never is (it is what prevents a second create).
CREATE TABLE guest_ledger_new (
    org_id     TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    guest_id   TEXT    NOT NULL,
    outbox_id  INTEGER NOT NULL,
    learned_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, email)
) WITHOUT ROWID;
INSERT INTO guest_ledger_new SELECT org_id, email, guest_id, outbox_id, learned_by, created_at
FROM guest_ledger;
DROP TABLE guest_ledger;
ALTER TABLE guest_ledger_new RENAME TO guest_ledger;

-- Emails of pruned rows that were attempted and never confirmed delivered: a create may have
-- reached Tallyfy, so a later row of the email looks the guest up first, as if the pruned row
-- were still there. Never pruned.
CREATE TABLE attempted_emails (
    email      TEXT    PRIMARY KEY,
    outbox_id  INTEGER NOT NULL,
    pruned_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- CRM items the bridge did not queue (no email, an invalid one, a contact the CRM says has
-- none): where to find them in the CRM and why, never their contact data.
CREATE TABLE refused (
    id              INTEGER PRIMARY KEY,
    source          TEXT    NOT NULL,
    -- The CRM's event id, when it sent one: a repeated delivery is recorded once.
    event_id        TEXT,
    -- The CRM's own record (Pipedrive person id, HubSpot objectId, Salesforce sObject Id).
    record_id       TEXT,
    -- The delivery it came in, where the CRM names one (Salesforce's Notification Id).
    notification_id TEXT,
    -- A code: missing_email, invalid_email, no_email_in_crm, ...
    reason          TEXT    NOT NULL,
    -- The field at fault, in the CRM's own naming.
    field           TEXT    NOT NULL,
    -- The outbox row, when the worker refused it after reading the CRM record.
    outbox_id       INTEGER,
    refused_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX refused_source_event ON refused (source, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX refused_at ON refused (refused_at);
CREATE INDEX refused_source_at ON refused (source, refused_at);
CREATE INDEX refused_reason_at ON refused (reason, refused_at);
-- A later update of the record that carries an email finds its refusal.
CREATE INDEX refused_record ON refused (source, record_id) WHERE record_id IS NOT NULL;

-- Refused items per source and reason, kept by triggers, for /status and /metrics.
CREATE TABLE refused_counts (
    source TEXT    NOT NULL,
    reason TEXT    NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, reason)
) WITHOUT ROWID;

CREATE TRIGGER refused_counts_insert AFTER INSERT ON refused
BEGIN
    INSERT INTO refused_counts (source, reason, n) VALUES (NEW.source, NEW.reason, 1)
    ON CONFLICT (source, reason) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER refused_counts_delete AFTER DELETE ON refused
BEGIN
    UPDATE refused_counts SET n = n - 1 WHERE source = OLD.source AND reason = OLD.reason;
END;

-- Every admin write: what, on which row or filter, how many rows, when, and which request.
CREATE TABLE admin_audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    -- retry | cancel | bulk_retry | bulk_cancel
    action     TEXT    NOT NULL,
    -- The row id, for a one-row action.
    target     TEXT,
    -- The filter, as JSON, for a bulk action.
    filter     TEXT,
    affected   INTEGER NOT NULL,
    request_id TEXT
);
CREATE INDEX admin_audit_at ON admin_audit (at);

-- Retention's last run, for /status.
ALTER TABLE worker_state ADD COLUMN last_prune_at INTEGER;
ALTER TABLE worker_state ADD COLUMN last_prune_rows INTEGER;

COMMIT;
PRAGMA foreign_keys = ON;
