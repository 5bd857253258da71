-- Owned by kiban-store (the vault). Personal data only in the vault (issue 14, item 7).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Per-subject data keys: what is known of a handler's patient outside any registration (a
-- request's requester, the stored receipt copy), keyed like consent events by handler and
-- patient_key, wrapped (AES-256-GCM) under the current vault key epoch like vault_keys.
-- The deletion of the patient deletes the row: everything sealed under it is shredded.
CREATE TABLE vault_subject_keys (
    handler_code TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key ${blob} NOT NULL,
    nonce ${blob} NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (handler_code, patient_key)
);

-- The requester's name sealed under the patient's subject key, the event ID bound as
-- associated data. The clear `requester` column is no longer written; values an older
-- workspace holds are sealed here and the clear column NULLed when it opens.
ALTER TABLE consent_events ADD COLUMN requester_sealed ${blob};
