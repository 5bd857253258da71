-- Owned by kiban-consent (issue 14): handler history, notice versions' own waiting period
-- and document, the patient facts that decide who may act for a patient (R-OPT-8), and the
-- scope of an explicit consent (opt-in).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Every change of a handler's record (filing, publication, name, address, representative,
-- waiting period), with the record before and after as JSON: nothing is overwritten without
-- a trace. before_json is NULL for the registration itself.
CREATE TABLE handler_history (
    change_id TEXT PRIMARY KEY,
    handler_code TEXT NOT NULL REFERENCES handlers (code),
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT NOT NULL
);
CREATE INDEX handler_history_handler ON handler_history (handler_code, changed_at);

-- A notice version's waiting period (NULL: the handler's) and the notice document given to
-- patients (its file name and SHA-256; the copy is kept in the workspace).
ALTER TABLE notice_versions ADD COLUMN waiting_days BIGINT;
ALTER TABLE notice_versions ADD COLUMN document_name TEXT;
ALTER TABLE notice_versions ADD COLUMN document_sha256 TEXT;

-- What an explicit consent (event kind 'consent') covers, as the patient gave it.
ALTER TABLE consent_events ADD COLUMN scope TEXT;

-- Facts about a patient that decide who may act for them (R-OPT-8), as recorded by the
-- desk: 'guardianship' (under guardianship, from status_date) and 'deceased' (died on
-- status_date). Keyed by patient_key like consent_events; one row per kind.
CREATE TABLE patient_status (
    handler_code TEXT NOT NULL REFERENCES handlers (code),
    patient_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status_date TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (handler_code, patient_key, kind)
);
