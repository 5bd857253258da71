-- Owned by kiban-consent (issue 14, item 4): the scope of a deletion request, and the
-- request an erasure record carries out (its columns on kiban-records' erasure_records).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- A deletion request's scope: 'handler' (that handler's data of the patient; the behaviour
-- before this migration, and what NULL means) or 'person' (every registration linked to the
-- same person by the last linkage run, across handlers). A person-scope request is recorded
-- as one deletion event per registration reached, all with the request's receipt number.
ALTER TABLE consent_events ADD COLUMN deletion_scope TEXT;

-- The deletion request an erasure record carries out: its scope ('handler' | 'person') and
-- its receipt number (NULL for erasures that answer no request, and for records written
-- before this migration).
ALTER TABLE erasure_records ADD COLUMN request_scope TEXT;
ALTER TABLE erasure_records ADD COLUMN request_receipt TEXT;
