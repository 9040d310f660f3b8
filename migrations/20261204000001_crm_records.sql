-- Reconcile (issue 16): every CRM record the bridge queued, so a contact reaches Tallyfy once
-- whether it came by webhook, by reconcile or both; a refusal a later row resolved (its email
-- arrived in an update, or a reconcile found one); and each source's reconcile watermark.

-- One row per CRM record queued (never pruned, like the ledger: it is what makes a reconcile of
-- an old contact a no-op). `outbox_id` is the latest row queued for the record.
CREATE TABLE crm_records (
    source     TEXT    NOT NULL,
    record_id  TEXT    NOT NULL,
    outbox_id  INTEGER NOT NULL,
    -- How it first arrived: webhook | reconcile | update
    came_by    TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (source, record_id)
) WITHOUT ROWID;

-- The row that queued a refused record later; NULL while the refusal is open.
ALTER TABLE refused ADD COLUMN resolved_outbox_id INTEGER;
CREATE INDEX refused_open_record ON refused (source, record_id)
    WHERE record_id IS NOT NULL AND resolved_outbox_id IS NULL;

-- Per source: the reconcile watermark (contacts created before it were listed) and the last
-- run, for /status.
CREATE TABLE reconcile_state (
    source            TEXT    PRIMARY KEY,
    watermark         INTEGER,
    last_started_at   INTEGER,
    last_finished_at  INTEGER,
    -- ok | failed
    last_result       TEXT,
    last_error        TEXT,
    last_seen         INTEGER NOT NULL DEFAULT 0,
    last_queued       INTEGER NOT NULL DEFAULT 0,
    last_refused      INTEGER NOT NULL DEFAULT 0,
    runs              INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    -- The CRM-side webhook subscription as last checked: ok | missing | inactive | wrong_url |
    -- error, a one-line detail and when.
    subscription      TEXT,
    subscription_detail TEXT,
    subscription_checked_at INTEGER
) WITHOUT ROWID;
