-- Owned by kiban-pipeline: source file names kept only sealed.
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Input paths carry personal data: an SS-MIX2 storage path names the hospital's patient ID
-- in its folders and file name, a FHIR export's file name often the patient's name. The
-- control plane and the lake therefore name a file only by its *reference*: 'f-' and 32 hex
-- digits of a keyed hash (index key) of handler code and relative path, the same for the
-- same file in every run. The path itself is kept here, sealed (AES-256-GCM under a key
-- derived from the master key, the reference bound as associated data), written in the
-- transaction of the first batch that names the reference, so that no reference is ever
-- stored without its name. `kiban files show REF` unseals it.
CREATE TABLE source_files (
    file_ref TEXT PRIMARY KEY,
    handler_code TEXT NOT NULL,
    sealed ${blob} NOT NULL
);

-- The columns that held relative paths hold references from now on.
ALTER TABLE ingest_files RENAME COLUMN rel_path TO file_ref;
ALTER TABLE ingest_attachments RENAME COLUMN rel_path TO file_ref;
-- quarantine.file, gate_rejections.file and ingest_attachments.main_document keep their
-- names and hold references too.

-- SS-MIX2 files: a keyed hash (index key) of the file name and its item folder, the part of
-- the path that SourceFile::ingest_key takes into account. Rows keyed by content hash alone
-- (written before keys took the name into account) are matched on it instead of the path.
ALTER TABLE ingest_files ADD COLUMN name_key TEXT;

-- Rows written before this migration hold clear paths: the workspace seals them and replaces
-- them by references the next time it opens, then sets this to 'done'. A control plane
-- without such rows has nothing to seal.
INSERT INTO kv (key, value)
SELECT 'source_file_names', 'pending'
WHERE EXISTS (SELECT 1 FROM ingest_files)
   OR EXISTS (SELECT 1 FROM quarantine)
   OR EXISTS (SELECT 1 FROM gate_rejections)
   OR EXISTS (SELECT 1 FROM ingest_attachments);
