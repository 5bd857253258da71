-- Owned by kiban-pipeline (ingest files and batches, quarantine, gate rejections, releases).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- One ingest batch: a chunk of files committed together. A batch that is still 'started'
-- when the workspace opens was interrupted: its lake parts and rows are rolled back and its
-- files ingested again (no duplicates, no losses).
CREATE TABLE ingest_batches (
    batch_id TEXT PRIMARY KEY,
    handler_code TEXT NOT NULL,
    status TEXT NOT NULL,
    received_on TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    files BIGINT NOT NULL DEFAULT 0,
    units BIGINT NOT NULL DEFAULT 0,
    facts BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0
);

-- Every file ever ingested, by content: the same content from the same handler is ingested
-- once (idempotency).
CREATE TABLE ingest_files (
    handler_code TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    format TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    batch_id TEXT NOT NULL,
    units BIGINT NOT NULL,
    facts BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    PRIMARY KEY (handler_code, sha256)
);

-- Input that could not be read: file, location (line, segment, entry), field, reason.
CREATE TABLE quarantine (
    quarantine_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    format TEXT NOT NULL,
    file TEXT NOT NULL,
    location TEXT NOT NULL,
    field TEXT,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX quarantine_batch ON quarantine (batch_id);

-- Units refused by the consent gate (R-OPT-7): nothing is silently dropped.
CREATE TABLE gate_rejections (
    rejection_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    file TEXT NOT NULL,
    location TEXT NOT NULL,
    reason TEXT NOT NULL,
    facts BIGINT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX gate_rejections_batch ON gate_rejections (batch_id);

-- Releases. The per-release key is kept wrapped by the workspace master key so that a
-- release can be re-derived for inspection; without the master key it is useless.
CREATE TABLE releases (
    release_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    level TEXT NOT NULL,
    internal_evaluation BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    persons BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    key_nonce ${blob} NOT NULL,
    key_wrapped ${blob} NOT NULL
);

-- Person clusters from linkage (名寄せ): registration → person key. Without a linkage run,
-- each registration is its own person.
CREATE TABLE person_links (
    registration_id TEXT PRIMARY KEY,
    person_key TEXT NOT NULL,
    linked_at TEXT NOT NULL
);
CREATE INDEX person_links_person ON person_links (person_key);
