-- Owned by kiban-pipeline: SS-MIX2 order versions across deliveries, retractions, kept
-- attachments, and machine codes for quarantine reasons.
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- The stable machine code of each quarantine reason (kiban_ingest::QuarantineCode); rows
-- written before this migration have none and count as 'unclassified'.
ALTER TABLE quarantine ADD COLUMN code TEXT;

-- ingest_files.sha256 holds the file's idempotency key: the content hash, except for files
-- in an SS-MIX2 tree, where it is a hash of content hash and name (a condition-flag-0 file
-- often repeats the bytes of the version it withdraws; see SourceFile::ingest_key).
-- The SS-MIX2 order version a file carries: order_key is a keyed hash (under the index key)
-- of patient ID, data type and order number, never the plain values. Together these rows
-- are the ledger of which version of each order a handler delivered; they are written and
-- rolled back with their batch.
ALTER TABLE ingest_files ADD COLUMN order_key TEXT;
ALTER TABLE ingest_files ADD COLUMN order_ts TEXT;
ALTER TABLE ingest_files ADD COLUMN condition_flag BIGINT;
CREATE INDEX ingest_files_order ON ingest_files (handler_code, order_key);

-- Facts removed from the lake because a later delivery invalidated (condition flag 0) or
-- replaced (newer timestamp) their order, per batch; retraction is 'none', 'pending' (the
-- batch committed, the lake not yet rewritten: finished when the workspace opens) or 'done'.
ALTER TABLE ingest_batches ADD COLUMN retracted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ingest_batches ADD COLUMN retraction TEXT NOT NULL DEFAULT 'none';

-- One retraction: every fact of the handler's order order_key from a file whose timestamp is
-- not later than cut_ts, written by another batch than batch_id, leaves the lake.
-- kind: 'invalidated' (condition flag 0) or 'replaced' (a newer version).
CREATE TABLE ingest_retractions (
    retraction_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    order_key TEXT NOT NULL,
    cut_ts TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX ingest_retractions_batch ON ingest_retractions (batch_id);

-- Files kept beside the facts (SS-MIX2 extended-storage attachments): content-addressed in
-- the lake (lake/attachments/), referenced per registration.
CREATE TABLE ingest_attachments (
    attachment_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    main_document TEXT NOT NULL,
    kind TEXT NOT NULL,
    mime TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    stored_ref TEXT NOT NULL,
    order_key TEXT,
    order_ts TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX ingest_attachments_batch ON ingest_attachments (batch_id);
CREATE INDEX ingest_attachments_registration ON ingest_attachments (registration_id);
