-- no-transaction
-- Stored events become the bridge's own tagged, versioned format ({"v": 1, "kind": ...}), and a
-- row whose email is not known yet (a HubSpot webhook names only its contact) keeps NULL there
-- and its CRM record in `crm_record`, instead of a made-up "email". SQLite cannot relax NOT NULL
-- in place, so the table is rebuilt (https://sqlite.org/lang_altertable.html#otheralter): with
-- foreign keys off, outside sqlx's transaction, inside our own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    -- Which inbound format the event came in ("canonical", "pipedrive", "hubspot", "salesforce").
    source          TEXT    NOT NULL,
    -- The CRM's event id, used to drop retries of the same event; NULL when none was sent.
    event_id        TEXT,
    -- Normalised email: the identity of the guest. NULL until the CRM record is read.
    email           TEXT,
    -- The CRM record the event names while its email is unknown, e.g. "hubspot:62515:5012".
    crm_record      TEXT,
    -- What one delivery at a time is allowed per: the email, or the record until it is known.
    claim_key       TEXT    GENERATED ALWAYS AS (coalesce(email, crm_record)) VIRTUAL,
    -- The stored event, as JSON: {"v": 1, "kind": "guest" | "hubspot_contact" | "pipedrive_person", ...}.
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
    delivered_at    INTEGER,
    CHECK (email IS NOT NULL OR crm_record IS NOT NULL)
);

-- The untagged payloads were told apart by shape: a HubSpot reference, a Pipedrive person
-- waiting for its organisation's name, or a guest.
INSERT INTO outbox_new (id, source, event_id, email, crm_record, payload, state, attempts,
                        next_attempt_at, lease_until, guest_id, last_error, received_at,
                        updated_at, delivered_at)
SELECT id, source, event_id,
       CASE WHEN json_type(payload, '$.hubspot_contact') IS NULL THEN email END,
       CASE WHEN json_type(payload, '$.hubspot_contact') IS NOT NULL THEN email END,
       CASE
           WHEN json_type(payload, '$.hubspot_contact') IS NOT NULL THEN json_object(
               'v', 1, 'kind', 'hubspot_contact',
               'portal_id', json_extract(payload, '$.hubspot_contact.portal_id'),
               'contact_id', json_extract(payload, '$.hubspot_contact.contact_id'))
           WHEN json_type(payload, '$.pipedrive_org') IS NOT NULL THEN json_object(
               'v', 1, 'kind', 'pipedrive_person',
               'org_id', json_extract(payload, '$.pipedrive_org.org_id'),
               'guest', json(json_extract(payload, '$.guest')))
           ELSE json_object('v', 1, 'kind', 'guest', 'guest', json(payload))
       END,
       state, attempts, next_attempt_at, lease_until, guest_id, last_error, received_at,
       updated_at, delivered_at
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

CREATE UNIQUE INDEX outbox_source_event ON outbox (source, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX outbox_waiting ON outbox (received_at)
    WHERE state IN ('queued', 'in_flight', 'retrying');
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'in_flight';
-- Keys of rows attempted and not delivered: "is this key in flight?" (one delivery per email,
-- or per CRM record, at a time) and, by email, "was it attempted before?". New (queued) rows
-- stay out of it, so ingest writes no random index page per event.
CREATE INDEX outbox_key_attempted ON outbox (claim_key)
    WHERE state IN ('in_flight', 'retrying', 'failed');

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
